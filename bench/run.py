#!/usr/bin/env python3
"""Benchmark of mcp-oauth-guard against a no-filter Envoy and an equivalent Lua filter.

One Envoy under test (the SUT, from .venv, one worker) has four listeners that differ only in
the filter: `none`, `wasm_all` (the filter on every route), `lua` (bench/guard.lua on every
route) and `wasm_scoped` (the filter disabled by default and enabled per route on /token and
/revoke, as envoy/envoy.yaml ships it). Upstreams, all on 127.0.0.1: an Envoy answering from
`direct_response` (MCP JSON-RPC, the token errors) and bench/sse_upstream.py (scripted SSE).

Scenarios: `mcp` (POST /mcp JSON-RPC, 200 JSON), `sse` (GET /sse, text/event-stream),
`token` (POST /token answered 400 "client does not exist": rewritten to 401 invalid_client by
the filters), `revoked` (POST /token answered 400 invalid_grant: a control, never rewritten).

Passes: correctness (every answer as expected on every listener; the wasm and Lua rewrites are
byte-identical), callgrind instructions per request (SUT under valgrind; per request = (I(2N) -
I(N)) / N, two repetitions), wrk capacity (interleaved rounds, median of per-round ratios),
SSE first-event delay and hold-back, RSS and startup per filter in separate processes with two
workers, module size. Every figure is a ratio to `none` (and to `lua`) in the same run.

  bench/run.sh            full run (about 15 minutes), writes bench/results.json
  bench/run.sh --smoke    correctness plus a short wall-clock pass, no valgrind (< 2 minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# The binary itself, not .venv/bin/envoy: that is a Python launcher that execs the binary, so
# valgrind would count Python and lose the process at the exec (and startup times would
# include Python's).
ENVOY = next(iter(sorted(ROOT.glob(".venv/lib/python3*/site-packages/envoy/_bin/envoy"))),
             ROOT / ".venv" / "bin" / "envoy")
WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "mcp_oauth_guard.wasm"
LUA = BENCH / "guard.lua"
WRK_SCRIPT = BENCH / "wrk.lua"

LISTENERS = ["none", "wasm_all", "lua", "wasm_scoped"]
FILTERED = ["wasm_all", "lua", "wasm_scoped"]
SCENARIOS = ["mcp", "sse", "token", "revoked"]

POLICY = """version: 1
providers:
  - name: oauth
    preset: generic
    endpoints:
      token: [/token]
      revocation: [/revoke]
"""

MCP_REQUEST = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
MCP_RESULT = ('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo",'
              '"description":"Echo the input back","inputSchema":{}}]}}')
TOKEN_REQUEST = b"grant_type=refresh_token&refresh_token=EXAMPLE_REFRESH_TOKEN"
BASIC = "Basic RVhBTVBMRV9DTElFTlRfSUQ6RVhBTVBMRV9DTElFTlRfU0VDUkVU"
CLIENT_GONE = ('{"error":"invalid_request","error_description":'
               '"The requested OAuth 2.0 Client does not exist."}')
INVALID_GRANT = ('{"error":"invalid_grant","error_description":'
                 '"The refresh token is invalid, expired or revoked."}')

# Scripted SSE: first event after SSE_D ms, then one every SSE_P ms.
SSE_D, SSE_P = 20, 10

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In a child: get SIGTERM when this script ends, even by SIGKILL (Linux)."""
    if _libc is not None:
        _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child process started by this script and stopped by it, also on failure."""

    def __init__(self, cmd: list[str], log: Path, cpu: str | None = None,
                 stdout_pipe: bool = False) -> None:
        if cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", cpu] + cmd
        self.log = log
        self.out = open(log, "wb")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self.out, stderr=self.out,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


def admin_get(admin: str, path: str) -> tuple[int, bytes]:
    host, port = admin.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Envoy:
    """An Envoy from .venv with its listeners on free ports, ready when `start` returns."""

    def __init__(self, name: str, config: dict, work: Path, stack: ExitStack,
                 concurrency: int = 1, cpu: str | None = None, valgrind: list[str] | None = None,
                 log_level: str = "warning", startup_timeout: float = 60) -> None:
        self.name = name
        self.work = work
        path = work / f"{name}.yaml"
        path.write_text(json.dumps(config, indent=1))
        admin_path = work / f"{name}.admin"
        admin_path.unlink(missing_ok=True)
        cmd = (valgrind or []) + [
            str(ENVOY), "-c", str(path), "--concurrency", str(concurrency),
            "--use-dynamic-base-id", "--base-id-path", str(work / f"{name}.base-id"),
            "--admin-address-path", str(admin_path), "-l", log_level,
            "--log-path", str(work / f"{name}.log"),
        ]
        self.started = time.monotonic()
        self.proc = Proc(cmd, work / f"{name}.stdout", cpu=cpu)
        stack.callback(self.proc.stop)
        deadline = time.monotonic() + startup_timeout
        self.admin = ""
        while True:
            if self.proc.proc.poll() is not None:
                self.proc.out.flush()
                tail = b"".join(open(p, "rb").read()[-1500:] for p in
                                (work / f"{name}.stdout", work / f"{name}.log") if p.exists())
                raise RuntimeError(f"Envoy {name} exited ({self.proc.proc.returncode}):\n"
                                   + tail.decode(errors="replace"))
            if time.monotonic() > deadline:
                raise RuntimeError(f"Envoy {name} not ready after {startup_timeout:.0f}s")
            if not self.admin and admin_path.exists():
                self.admin = admin_path.read_text().strip()
            if self.admin:
                try:
                    status, body = admin_get(self.admin, "/ready")
                    if status == 200 and body.strip() == b"LIVE":
                        break
                except OSError:
                    pass
            time.sleep(0.02)
        status, body = admin_get(self.admin, "/listeners?format=json")
        self.ports = {
            item["name"]: item["local_address"]["socket_address"]["port_value"]
            for item in json.loads(body).get("listener_statuses", [])
        }

    @property
    def pid(self) -> int:
        return self.proc.pid


# ---------------------------------------------------------------------------------------------
# Envoy configurations


def listener(name: str, hcm: dict) -> dict:
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm,
        }]}],
    }


def cluster(name: str, port: int) -> dict:
    return {
        "name": name, "type": "STATIC", "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def bootstrap(listeners: list[dict], clusters: list[dict]) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        # Nothing periodic in the SUT while callgrind counts.
        "stats_flush_interval": "299s",
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def json_reply(status: int, body: str) -> dict:
    return {
        "direct_response": {"status": status, "body": {"inline_string": body}},
        "response_headers_to_add": [{
            "header": {"key": "content-type", "value": "application/json"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }],
    }


def upstream_config() -> dict:
    """Upstream A: every non-SSE answer from `direct_response` (fast, no Python)."""
    routes = [
        {"match": {"path": "/mcp"}, **json_reply(200, MCP_RESULT)},
        {"match": {"path": "/token", "headers": [
            {"name": "x-bench-case", "string_match": {"exact": "revoked"}}]},
         **json_reply(400, INVALID_GRANT)},
        {"match": {"path": "/token"}, **json_reply(400, CLIENT_GONE)},
        {"match": {"prefix": "/"}, **json_reply(404, '{"error":"not_found"}')},
    ]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
                 ".v3.HttpConnectionManager",
        "stat_prefix": "upstream",
        "route_config": {"virtual_hosts": [{"name": "a", "domains": ["*"], "routes": routes}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return bootstrap([listener("upstream", hcm)], [])


def wasm_filter(disabled: bool) -> dict:
    f = {
        "name": "mcp-oauth-guard",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "mcp_oauth_guard", "root_id": "mcp_oauth_guard",
                "allow_on_headers_stop_iteration": True,
                "failure_policy": "FAIL_OPEN",
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": POLICY},
                "vm_config": {"vm_id": "mcp_oauth_guard", "runtime": "envoy.wasm.runtime.v8",
                              "code": {"local": {"filename": str(WASM)}}},
            },
        },
    }
    if disabled:
        f["disabled"] = True
    return f


def lua_filter() -> dict:
    return {"name": "envoy.filters.http.lua", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        "default_source_code": {"filename": str(LUA)}}}


def sut_listener(kind: str) -> dict:
    """One SUT listener; the four share one route table and differ only in the filter."""
    guard_on = {}
    if kind == "wasm_scoped":
        guard_on = {"typed_per_filter_config": {"mcp-oauth-guard": {
            "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {}}}}
    routes = [
        {"match": {"path": "/token"}, "route": {"cluster": "upstream"}, **guard_on},
        {"match": {"path": "/revoke"}, "route": {"cluster": "upstream"}, **guard_on},
        {"match": {"prefix": "/sse"}, "route": {"cluster": "sse", "timeout": "0s"}},
        {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}},
    ]
    filters = {
        "none": [],
        "wasm_all": [wasm_filter(disabled=False)],
        "lua": [lua_filter()],
        "wasm_scoped": [wasm_filter(disabled=True)],
    }[kind]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
                 ".v3.HttpConnectionManager",
        "stat_prefix": kind,
        "normalize_path": True,
        "merge_slashes": True,
        "route_config": {"name": kind, "virtual_hosts": [
            {"name": kind, "domains": ["*"], "routes": routes}]},
        "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return listener(kind, hcm)


def sut_config(kinds: list[str], upstream_port: int, sse_port: int) -> dict:
    return bootstrap([sut_listener(k) for k in kinds],
                     [cluster("upstream", upstream_port), cluster("sse", sse_port)])


# ---------------------------------------------------------------------------------------------
# Requests


def request_args(scenario: str) -> tuple[str, str, bytes | None, dict]:
    if scenario == "mcp":
        return "POST", "/mcp", MCP_REQUEST, {
            "content-type": "application/json", "accept": "application/json, text/event-stream"}
    if scenario == "token":
        return "POST", "/token", TOKEN_REQUEST, {
            "content-type": "application/x-www-form-urlencoded", "authorization": BASIC}
    if scenario == "revoked":
        return "POST", "/token", TOKEN_REQUEST, {
            "content-type": "application/x-www-form-urlencoded", "authorization": BASIC,
            "x-bench-case": "revoked"}
    if scenario == "sse":
        return "GET", "/sse?n=20&d=0&p=2", None, {"accept": "text/event-stream"}
    raise ValueError(scenario)


def batch(port: int, scenario: str, count: int) -> list[tuple[int, dict, bytes]]:
    """`count` requests on one keep-alive connection; the answers (status, headers, body)."""
    method, path, body, headers = request_args(scenario)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    out = []
    try:
        for _ in range(count):
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out.append((resp.status, {k.lower(): v for k, v in resp.getheaders()}, data))
    finally:
        conn.close()
    return out


def check_answers(ports: dict[str, int]) -> dict:
    """Every scenario on every listener answers as the design says. Raises on a difference."""
    seen: dict[str, dict[str, tuple[int, dict, bytes]]] = {}
    for kind in LISTENERS:
        seen[kind] = {s: batch(ports[kind], s, 1)[0] for s in SCENARIOS}
    problems = []
    for kind in LISTENERS:
        status, headers, body = seen[kind]["mcp"]
        if status != 200 or body != MCP_RESULT.encode():
            problems.append(f"{kind} mcp: {status} {body[:80]!r}")
        status, headers, body = seen[kind]["revoked"]
        if status != 400 or body != INVALID_GRANT.encode():
            problems.append(f"{kind} revoked: {status} {body[:80]!r}")
        status, headers, body = seen[kind]["sse"]
        if status != 200 or body.count(b"data: ") != 20:
            problems.append(f"{kind} sse: {status}, {body.count(b'data: ')} events")
        status, headers, body = seen[kind]["token"]
        if kind == "none":
            if status != 400 or body != CLIENT_GONE.encode():
                problems.append(f"none token: {status} {body[:80]!r}")
            continue
        try:
            error = json.loads(body).get("error")
        except ValueError:
            error = None
        if (status != 401 or error != "invalid_client"
                or headers.get("cache-control") != "no-store"
                or not headers.get("www-authenticate", "").startswith("Basic ")):
            problems.append(f"{kind} token: {status} {headers} {body[:80]!r}")
    wasm, lua = seen["wasm_all"]["token"], seen["lua"]["token"]
    if wasm[2] != lua[2] or wasm[1].get("www-authenticate") != lua[1].get("www-authenticate"):
        problems.append(f"wasm and Lua rewrites differ: {wasm[2]!r} / {lua[2]!r}")
    if problems:
        raise RuntimeError("wrong answers:\n  " + "\n  ".join(problems))
    return {"ok": True, "rewrite_status": wasm[0], "rewrite_body_bytes": len(wasm[2]),
            "wasm_equals_lua": True}


# ---------------------------------------------------------------------------------------------
# Pass 1: callgrind


def callgrind_totals(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def callgrind_control(option: str, pid: int) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def measure_callgrind(sut: Envoy, work: Path, scenario: str, port: int, n: int,
                      warmup: int, reps: int) -> list[float]:
    batch(port, scenario, warmup)
    per_request = []
    for _ in range(reps):
        totals = []
        for count in (n, 2 * n):
            before = set(work.glob("callgrind.out.*"))
            callgrind_control("-z", sut.pid)
            batch(port, scenario, count)
            callgrind_control("-d", sut.pid)
            deadline = time.monotonic() + 60
            while True:
                new = sorted(set(work.glob("callgrind.out.*")) - before,
                             key=lambda p: p.stat().st_mtime)
                if new:
                    time.sleep(0.2)
                    totals.append(callgrind_totals(new[-1]))
                    new[-1].unlink()
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("callgrind dump did not appear")
                time.sleep(0.1)
        per_request.append((totals[1] - totals[0]) / n)
    return per_request


def pass_callgrind(args, work: Path, stack: ExitStack, upstream_port: int, sse_port: int) -> dict:
    cfg = sut_config(LISTENERS, upstream_port, sse_port)
    valgrind = ["valgrind", "--tool=callgrind", "--smc-check=all-non-file",
                "--dump-instr=no", "--compress-strings=no",
                f"--callgrind-out-file={work}/callgrind.out.%p"]
    print(f"[bench] callgrind: starting the SUT under valgrind (slow)", file=sys.stderr)
    sut = Envoy("sut-callgrind", cfg, work, stack, cpu="1", valgrind=valgrind,
                startup_timeout=600)
    results: dict[str, dict] = {}
    for scenario in SCENARIOS:
        n = args.cg_requests if scenario != "sse" else max(20, args.cg_requests // 10)
        for kind in LISTENERS:
            reps = measure_callgrind(sut, work, scenario, sut.ports[kind], n,
                                     args.cg_warmup if scenario != "sse" else 20, args.cg_reps)
            spread = (max(reps) - min(reps)) / min(reps) if min(reps) > 0 else float("inf")
            results.setdefault(kind, {})[scenario] = {
                "instructions_per_request": reps, "spread": spread, "n": n}
            print(f"[bench] callgrind {scenario:8} {kind:12} "
                  + " / ".join(f"{r:,.0f}" for r in reps) + f"  spread {spread:.2%}",
                  file=sys.stderr)
    sut.proc.stop()
    return results


# ---------------------------------------------------------------------------------------------
# Pass 2: wrk capacity and latency


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_latency(text: str, label: str) -> float | None:
    m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return None
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    return float(m.group(1)) * scale


def run_wrk(port: int, scenario: str, seconds: float, connections: int) -> dict:
    env = dict(os.environ, BENCH_CASE=scenario)
    cmd = ["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
           "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    errors = re.search(r"Socket errors: (.*)", text)
    if out.returncode != 0 or not rps or not total:
        raise RuntimeError(f"wrk failed: {out.stderr or text}")
    return {"rps": float(rps.group(1)), "requests": int(total.group(1)),
            "p50_ms": parse_latency(text, "50%"), "p99_ms": parse_latency(text, "99%"),
            "socket_errors": errors.group(1) if errors else None}


def pass_wrk(args, sut: Envoy) -> dict:
    scenarios = ["mcp", "token", "revoked"]
    rounds: dict[str, dict[str, list[dict]]] = {s: {k: [] for k in LISTENERS} for s in scenarios}
    # Warm-up: upstream connections, V8 tier-up, Lua JIT; not counted.
    for scenario in scenarios:
        for kind in LISTENERS:
            run_wrk(sut.ports[kind], scenario, 1, args.connections)
    for r in range(args.rounds):
        for scenario in scenarios:
            # Rotate the order every round so no listener always runs first.
            order = LISTENERS[r % 4:] + LISTENERS[:r % 4]
            for kind in order:
                cpu0 = proc_cpu_seconds(sut.pid)
                res = run_wrk(sut.ports[kind], scenario, args.seconds, args.connections)
                res["sut_cpu_us_per_request"] = (
                    (proc_cpu_seconds(sut.pid) - cpu0) * 1e6 / max(res["requests"], 1))
                res["sut_cpu_busy"] = (proc_cpu_seconds(sut.pid) - cpu0) / args.seconds
                rounds[scenario][kind].append(res)
        print(f"[bench] wrk round {r + 1}/{args.rounds}: " + ", ".join(
            f"{s} " + "/".join(f"{rounds[s][k][-1]['rps']:.0f}" for k in LISTENERS)
            for s in scenarios), file=sys.stderr)

    out: dict[str, dict] = {}
    for scenario in scenarios:
        for kind in LISTENERS:
            runs = rounds[scenario][kind]
            ratios = [runs[i]["rps"] / rounds[scenario]["none"][i]["rps"]
                      for i in range(len(runs))]
            vs_lua = [runs[i]["rps"] / rounds[scenario]["lua"][i]["rps"]
                      for i in range(len(runs))]
            q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
            out.setdefault(kind, {})[scenario] = {
                "rps_median": statistics.median(r["rps"] for r in runs),
                "ratio_vs_none_median": statistics.median(ratios),
                "ratio_vs_none_iqr": [q[0], q[2]],
                "ratio_vs_lua_median": statistics.median(vs_lua),
                "p50_ms_median": statistics.median(r["p50_ms"] or 0 for r in runs),
                "p99_ms_median": statistics.median(r["p99_ms"] or 0 for r in runs),
                "sut_cpu_us_per_request_median": statistics.median(
                    r["sut_cpu_us_per_request"] for r in runs),
                "sut_cpu_busy_median": statistics.median(r["sut_cpu_busy"] for r in runs),
                "rounds": len(runs),
            }
    return out


# ---------------------------------------------------------------------------------------------
# Pass 3: SSE first event and hold-back


async def sse_stream(port: int, n: int) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = time.monotonic_ns()
    writer.write(f"GET /sse?n={n}&d={SSE_D}&p={SSE_P} HTTP/1.1\r\nhost: bench\r\n"
                 "accept: text/event-stream\r\nconnection: close\r\n\r\n".encode())
    await writer.drain()
    buf = b""
    events: list[tuple[int, int, int]] = []  # (k, written_ns, arrived_ns)
    while len(events) < n:
        data = await asyncio.wait_for(reader.read(65536), timeout=30)
        now = time.monotonic_ns()
        if not data:
            break
        buf += data
        for m in re.finditer(rb'data: \{"k":(\d+),"t":(\d+)\}\n\n', buf):
            events.append((int(m.group(1)), int(m.group(2)), now))
        last = buf.rfind(b"\n\n")
        if last >= 0:
            buf = buf[last + 2:]
    writer.close()
    if len(events) != n or [e[0] for e in events] != list(range(n)):
        raise RuntimeError(f"SSE on port {port}: got {len(events)} of {n} events in order")
    delays = [(arrived - written) / 1e6 for _, written, arrived in events]
    return {
        "ttfe_minus_d_ms": (events[0][2] - sent) / 1e6 - SSE_D,
        "first_delay_ms": delays[0],
        "max_delay_ms": max(delays),
        # Held back: event k reached the client only after the upstream wrote event k+1.
        "held_back": sum(1 for d in delays if d >= SSE_P),
    }


async def sse_listener(port: int, streams: int, concurrency: int, n: int) -> list[dict]:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> dict:
        async with sem:
            return await sse_stream(port, n)

    return await asyncio.gather(*(one() for _ in range(streams)))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def pass_sse(args, sut: Envoy) -> dict:
    per: dict[str, list[dict]] = {k: [] for k in LISTENERS}
    half = max(1, args.sse_streams // 2)
    for kind in LISTENERS:  # warm-up, not counted
        asyncio.run(sse_listener(sut.ports[kind], 8, 8, 2))
    for r in range(2):  # two interleaved rounds
        for kind in (LISTENERS if r == 0 else LISTENERS[::-1]):
            per[kind] += asyncio.run(sse_listener(sut.ports[kind], half, 8, args.sse_events))
    out = {}
    for kind, runs in per.items():
        out[kind] = {
            "streams": len(runs), "events_per_stream": args.sse_events,
            "ttfe_minus_d_ms_p50": pct([r["ttfe_minus_d_ms"] for r in runs], 0.5),
            "ttfe_minus_d_ms_p99": pct([r["ttfe_minus_d_ms"] for r in runs], 0.99),
            "first_event_delay_ms_p50": pct([r["first_delay_ms"] for r in runs], 0.5),
            "first_event_delay_ms_p99": pct([r["first_delay_ms"] for r in runs], 0.99),
            "max_event_delay_ms": max(r["max_delay_ms"] for r in runs),
            "events_held_back": sum(r["held_back"] for r in runs),
        }
    for kind in LISTENERS:
        out[kind]["ttfe_p99_added_ms_vs_none"] = (
            out[kind]["ttfe_minus_d_ms_p99"] - out["none"]["ttfe_minus_d_ms_p99"])
    return out


# ---------------------------------------------------------------------------------------------
# Pass 4: RSS and startup per filter, separate processes, two workers


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pass_memory(args, work: Path, upstream_port: int, sse_port: int) -> dict:
    out = {}
    for kind in LISTENERS:
        with ExitStack() as stack:
            env = Envoy(f"mem-{kind}", sut_config([kind], upstream_port, sse_port), work, stack,
                        concurrency=2, cpu="1")
            port = env.ports[kind]
            first = None
            while first is None:
                try:
                    if batch(port, "mcp", 1)[0][0] == 200:
                        first = (time.monotonic() - env.started) * 1000
                except OSError:
                    time.sleep(0.005)
            for scenario in ("mcp", "token", "revoked"):
                batch(port, scenario, args.mem_requests)
            out[kind] = {"rss_mib": rss_mib(env.pid), "startup_to_first_200_ms": first}
    for kind in LISTENERS:
        out[kind]["rss_added_mib"] = out[kind]["rss_mib"] - out["none"]["rss_mib"]
    return out


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()[:16]
    envoy = subprocess.run([str(ENVOY), "--version"], capture_output=True, text=True).stdout
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "lscpu": lscpu,
            "envoy": re.search(r"\d+\.\d+\.\d+", envoy).group(0) if envoy else "?",
            "git": sha}


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.3f}" if a and b else "-"


def table(results: dict) -> str:
    lines = []
    cg = results.get("callgrind") or {}
    wrk = results.get("wrk") or {}
    if cg:
        lines += ["### Instructions per request (callgrind, mean of reps; ratio vs none / vs lua)",
                  "", "| listener | " + " | ".join(SCENARIOS) + " |",
                  "| --- |" + " --- |" * len(SCENARIOS)]
        for kind in LISTENERS:
            cells = []
            for s in SCENARIOS:
                c = cg[kind][s]
                mean = statistics.mean(c["instructions_per_request"])
                none = statistics.mean(cg["none"][s]["instructions_per_request"])
                lua = statistics.mean(cg["lua"][s]["instructions_per_request"])
                void = " VOID: reps differ > 1%" if c["spread"] > 0.01 else ""
                cells.append(f"{mean:,.0f} ({ratio(mean, none)} / {ratio(mean, lua)}; "
                             f"spread {c['spread']:.2%}{void})")
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Added instructions vs none: " + "; ".join(
            f"{s}: " + ", ".join(
                f"{k} {statistics.mean(cg[k][s]['instructions_per_request']) - statistics.mean(cg['none'][s]['instructions_per_request']):+,.0f}"
                for k in FILTERED) for s in SCENARIOS))
        lines.append("")
    if wrk:
        lines += ["### Capacity (wrk -t1 -c32, medians over rounds: req/s, per-round ratio "
                  "[IQR], p50/p99 ms, SUT CPU µs/request, SUT core busy)", "",
                  "| listener | scenario | req/s | vs none | vs lua | p50 | p99 | CPU µs/req "
                  "| SUT busy |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for s in ["mcp", "token", "revoked"]:
            for kind in LISTENERS:
                w = wrk[kind][s]
                lines.append(
                    f"| {kind} | {s} | {w['rps_median']:.0f} | {w['ratio_vs_none_median']:.3f} "
                    f"[{w['ratio_vs_none_iqr'][0]:.3f}-{w['ratio_vs_none_iqr'][1]:.3f}] | "
                    f"{w['ratio_vs_lua_median']:.3f} | {w['p50_ms_median']:.2f} | "
                    f"{w['p99_ms_median']:.2f} | {w['sut_cpu_us_per_request_median']:.1f} | "
                    f"{w['sut_cpu_busy_median']:.0%} |")
        lines.append("")
    sse = results.get("sse")
    if sse:
        lines += ["### SSE (first event after 20 ms, then every 10 ms)", "",
                  "| listener | TTFE−d p50 ms | TTFE−d p99 ms | p99 added vs none | "
                  "first-event delay p99 ms | max event delay ms | events held back |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for kind in LISTENERS:
            x = sse[kind]
            lines.append(f"| {kind} | {x['ttfe_minus_d_ms_p50']:.2f} | "
                         f"{x['ttfe_minus_d_ms_p99']:.2f} | {x['ttfe_p99_added_ms_vs_none']:+.2f} | "
                         f"{x['first_event_delay_ms_p99']:.2f} | {x['max_event_delay_ms']:.2f} | "
                         f"{x['events_held_back']} of {x['streams'] * x['events_per_stream']} |")
        lines.append("")
    mem = results.get("memory")
    if mem:
        lines += ["### Memory and startup (separate Envoy per filter, 2 workers)", "",
                  "| listener | RSS MiB | added MiB | start to first 200 ms |",
                  "| --- | --- | --- | --- |"]
        for kind in LISTENERS:
            m = mem[kind]
            lines.append(f"| {kind} | {m['rss_mib']:.1f} | {m['rss_added_mib']:+.1f} | "
                         f"{m['startup_to_first_200_ms']:.0f} |")
        lines.append("")
    lines.append(f"Module: {results['module_bytes']:,} bytes "
                 f"({results['module_bytes'] / 1024:.0f} KiB).")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="correctness and a short wall-clock pass, no valgrind (< 2 minutes)")
    p.add_argument("--no-callgrind", action="store_true")
    p.add_argument("--rounds", type=int, default=10, help="wrk rounds (default 10)")
    p.add_argument("--seconds", type=int, default=2, help="seconds per wrk run (default 2)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--cg-requests", type=int, default=200,
                   help="N of the callgrind batches N and 2N (default 200)")
    p.add_argument("--cg-warmup", type=int, default=100)
    p.add_argument("--cg-reps", type=int, default=2)
    p.add_argument("--sse-streams", type=int, default=100)
    p.add_argument("--sse-events", type=int, default=20)
    p.add_argument("--mem-requests", type=int, default=200)
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default bench/results.json; .work/bench-smoke.json "
                        "with --smoke)")
    args = p.parse_args()
    if args.smoke:
        args.no_callgrind = True
        args.rounds, args.seconds = 1, 1
        args.sse_streams, args.mem_requests = 8, 20
    out_path = args.out or (ROOT / ".work" / "bench-smoke.json" if args.smoke
                            else BENCH / "results.json")

    for tool, why in [(ENVOY, "run scripts/bootstrap.sh"), (WASM, "run scripts/bootstrap.sh")]:
        if not Path(tool).exists():
            print(f"error: {tool} missing ({why})", file=sys.stderr)
            return 2
    needed = ["wrk", "taskset"] + ([] if args.no_callgrind else ["valgrind", "callgrind_control"])
    missing = [t for t in needed if not shutil.which(t)]
    if missing:
        print(f"error: missing tools: {', '.join(missing)}", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    results: dict = {"mode": "smoke" if args.smoke else "full", "machine": machine(),
                     "module_bytes": WASM.stat().st_size,
                     "settings": {k: (str(v) if isinstance(v, Path) else v)
                                  for k, v in vars(args).items()}}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="mcp-guard-bench-") as tmp:
        work = Path(tmp)
        upstream = Envoy("upstream", upstream_config(), work, stack, cpu="0")
        upstream_port = upstream.ports["upstream"]
        sse = Proc([sys.executable, str(BENCH / "sse_upstream.py"), "0"], work / "sse.log",
                   cpu="0", stdout_pipe=True)
        stack.callback(sse.stop)
        sse_port = int(sse.proc.stdout.readline())

        if not args.no_callgrind:
            results["callgrind"] = pass_callgrind(args, work, stack, upstream_port, sse_port)

        sut = Envoy("sut", sut_config(LISTENERS, upstream_port, sse_port), work, stack, cpu="1")
        try:
            results["answers"] = check_answers(sut.ports)
        except RuntimeError:
            print((work / "sut.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        print("[bench] answers: OK on every listener (wasm and Lua rewrites identical)",
              file=sys.stderr)
        results["wrk"] = pass_wrk(args, sut)
        results["sse"] = pass_sse(args, sut)
        sut.proc.stop()
        results["memory"] = pass_memory(args, work, upstream_port, sse_port)
    results["elapsed_s"] = round(time.monotonic() - started, 1)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    print(f"\n[bench] {results['mode']} run in {results['elapsed_s']} s; results: {out_path}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
