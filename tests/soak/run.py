#!/usr/bin/env python3
"""Soak test: the shipped Envoy config with the filter against the same config without it,
under the same bounded mixed load (ENVOY-NOTES §6 R8).

  tests/soak/run.py                          CI form: 25 s at 100 requests/s per Envoy
  tests/soak/run.py --seconds 240 --rps 200  full form
  tests/soak/run.py --all-routes             the filter on every route (not only the endpoints)

Two Envoys from .venv (each `--concurrency 1`), both built from envoy/envoy.yaml with local
addresses: "filter" as shipped (the filter declared `disabled: true` and enabled per route on
/token, /revoke, /authorize, /register; with --all-routes, enabled on every route) and
"baseline" with the filter entry and its per-route configs removed. One raw-socket Python
upstream serves both clusters. Each Envoy gets the same request sequence at the same bounded
rate on keep-alive connections: ~70% MCP POST /mcp, 10% SSE GET /mcp, 10% POST /token answered
400 "client does not exist" (rewritten to 401 invalid_client by the filter), 5% GET
/.well-known/oauth-authorization-server, 5% POST /token answered with an over-cap body (CL or
chunked, left untouched).

Asserts: 0 failed requests; every answer as expected (rewrites exactly where expected, all other
bodies byte-identical to the upstream's); VmRSS growth of the filter Envoy from the end of
warm-up to the end no more than the baseline's growth + 1 MiB (VmRSS of the real envoy binary
process: .venv/bin/envoy is a Python launcher that execs it); no wasm VM reload
(wasm.*.vm_reload* = 0, runtime.v8.created unchanged); response.host_refused = 0; the filter's
rewrite counter equals the rewrites seen. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "differential"))
sys.path.insert(0, str(ROOT / "tests" / "replay"))

import replay  # noqa: E402  (Envoy handle, parent-death signal, log helpers)
from cases import CAP, INVALID_CLIENT_DESCRIPTION, jdump, pad_json  # noqa: E402
from wire import Answer, H1Conn, RawUpstream, module_id  # noqa: E402

ENVOY = ROOT / ".venv" / "bin" / "envoy"
WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "mcp_oauth_guard.wasm"
MIB = 1024 * 1024
RSS_SLACK = 1 * MIB

MIX = [("mcp", 70), ("sse", 10), ("token_gone", 10), ("metadata", 5), ("overcap", 5)]
GONE = {"error": "invalid_request", "error_description": "The requested OAuth 2.0 Client does not exist."}
METADATA = jdump({"issuer": "http://127.0.0.1", "token_endpoint": "http://127.0.0.1/token",
                  "registration_endpoint": "http://127.0.0.1/register",
                  "authorization_endpoint": "http://127.0.0.1/authorize"})
REWRITTEN = jdump({"error": "invalid_client", "error_description": INVALID_CLIENT_DESCRIPTION})
BASIC = "Basic YzE6czE="


# ---------------------------------------------------------------------------------------------
# What the upstream answers and what each client must receive


def mcp_body(i: int) -> bytes:
    return jdump({"jsonrpc": "2.0", "id": i, "result": {"tools": [{"name": "echo", "inputSchema": {}}]}})


def sse_events(i: int) -> list[bytes]:
    return [b"event: message\nid: %d\ndata: %s\n\n" % (k, jdump({"i": i, "k": k})) for k in range(4)]


def overcap_body(i: int) -> bytes:
    return pad_json(GONE, CAP + 1 + (i % 3) * 1000)


def upstream_answer(method: str, target: str, headers: dict, body: bytes) -> Answer:
    kind = headers.get("x-soak-kind", "")
    i = int(headers.get("x-soak-id", "0") or 0)
    framing = "cl" if i % 2 == 0 else "chunked"
    if kind == "mcp":
        return Answer(200, [("Content-Type", "application/json")], mcp_body(i), framing)
    if kind == "sse":
        ev = sse_events(i)
        return Answer(200, [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")],
                      b"".join(ev), "chunked", [len(e) for e in ev], pause_s=0.002)
    if kind == "token_gone":
        return Answer(400, [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                      jdump(GONE), framing)
    if kind == "metadata":
        return Answer(200, [("Content-Type", "application/json")], METADATA, framing)
    if kind == "overcap":
        b = overcap_body(i)
        return Answer(400, [("Content-Type", "application/json")], b, framing,
                      [4096] * (len(b) // 4096 + 1) if framing == "chunked" else [])
    return Answer(404, [("Content-Type", "text/plain")], b"unknown soak kind\n")


REQUESTS = {  # kind -> (method, path, extra headers, body)
    "mcp": ("POST", "/mcp", [("Content-Type", "application/json"),
                             ("Accept", "application/json, text/event-stream")],
            b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'),
    "sse": ("GET", "/mcp", [("Accept", "text/event-stream")], b""),
    "token_gone": ("POST", "/token", [("Content-Type", "application/x-www-form-urlencoded"),
                                      ("Authorization", BASIC)],
                   b"grant_type=refresh_token&refresh_token=rt"),
    "metadata": ("GET", "/.well-known/oauth-authorization-server", [], b""),
    "overcap": ("POST", "/token", [("Content-Type", "application/x-www-form-urlencoded"),
                                   ("Authorization", BASIC)],
                b"grant_type=refresh_token&refresh_token=rt"),
}


def check_answer(kind: str, i: int, filtered: bool, r) -> str:
    """'' when the answer is right, else why not."""
    if r.error:
        return f"transport error: {r.error}"
    if kind == "mcp":
        want = (200, mcp_body(i))
    elif kind == "sse":
        want = (200, b"".join(sse_events(i)))
    elif kind == "token_gone":
        want = (401, REWRITTEN) if filtered else (400, jdump(GONE))
    elif kind == "metadata":
        want = (200, METADATA)
    else:
        want = (400, overcap_body(i))
    if r.status != want[0]:
        return f"status {r.status}, want {want[0]}"
    if r.body != want[1]:
        return (f"body {hashlib.sha256(r.body).hexdigest()[:12]} ({len(r.body)} B), want "
                f"{hashlib.sha256(want[1]).hexdigest()[:12]} ({len(want[1])} B)")
    if kind == "token_gone" and filtered:
        if r.header("www-authenticate") != 'Basic realm="oauth", error="invalid_client"':
            return f"www-authenticate {r.header('www-authenticate')!r}"
        if r.header("cache-control") != "no-store":
            return f"cache-control {r.header('cache-control')!r}"
    return ""


# ---------------------------------------------------------------------------------------------
# Envoy configs from the shipped envoy/envoy.yaml


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise SystemExit(f"envoy/envoy.yaml changed: expected exactly one {old!r}; update "
                         "tests/soak/run.py")
    return text.replace(old, new)


def shipped_config(upstream_port: int, wasm: Path, filtered: bool, all_routes: bool) -> str:
    text = (ROOT / "envoy" / "envoy.yaml").read_text()
    text = _replace_once(text, "/etc/envoy/mcp_oauth_guard.wasm", str(wasm))
    text = _replace_once(text, "address: 0.0.0.0, port_value: 10000", "address: 127.0.0.1, port_value: 0")
    text = _replace_once(text, "address: 127.0.0.1, port_value: 9901", "address: 127.0.0.1, port_value: 0")
    text = _replace_once(text, "address: oauth-provider, port_value: 9000",
                         f"address: 127.0.0.1, port_value: {upstream_port}")
    text = _replace_once(text, "address: mcp-server, port_value: 9000",
                         f"address: 127.0.0.1, port_value: {upstream_port}")
    lines = text.split("\n")
    if filtered:
        if all_routes:
            i = lines.index("          - name: mcp-oauth-guard")
            if lines[i + 1].strip() != "disabled: true":
                raise SystemExit("envoy/envoy.yaml changed: no `disabled: true` after the filter")
            del lines[i + 1]
        return "\n".join(lines)
    # Baseline: no filter entry, no per-route filter configs.
    start = lines.index("          - name: mcp-oauth-guard")
    end = lines.index("          - name: envoy.filters.http.router")
    del lines[start:end]
    out, skip = [], 0
    for line in lines:
        if skip:
            skip -= 1
            continue
        if line.strip() == "typed_per_filter_config: &guard_on":
            skip = 3  # mcp-oauth-guard:, "@type", config: {}
            continue
        if line.strip() == "typed_per_filter_config: *guard_on":
            continue
        out.append(line)
    text = "\n".join(out)
    code = "\n".join(line.split("#", 1)[0] for line in out)
    if "mcp-oauth-guard" in code or "guard_on" in code or "wasm" in code:
        raise SystemExit("baseline config still mentions the filter; update tests/soak/run.py")
    return text


class SoakEnvoy:
    def __init__(self, name: str, config: str, work: Path, stack: ExitStack, envoy_bin: Path):
        self.name = name
        cfg = work / f"{name}.yaml"
        cfg.write_text(config)
        admin_path = work / f"{name}.admin"
        self.log = work / f"{name}.log"
        cmd = [str(envoy_bin), "-c", str(cfg), "--concurrency", "1", "--use-dynamic-base-id",
               "--base-id-path", str(work / f"{name}.base-id"), "--admin-address-path",
               str(admin_path), "--log-path", str(self.log), "-l", "warning"]
        with open(work / f"{name}.stdout", "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, preexec_fn=replay._die_with_parent)
        self.handle = replay.Envoy(proc)
        stack.callback(self.handle.stop)
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Envoy {name} exited ({proc.returncode}):\n"
                                   + replay.log_tail(self.log, 20))
            if time.monotonic() > deadline:
                raise RuntimeError(f"Envoy {name} not ready after 90 s")
            if not self.handle.admin and admin_path.exists():
                self.handle.admin = admin_path.read_text().strip()
            if self.handle.admin:
                try:
                    st, body = self.handle.admin_get("/ready")
                    if st == 200 and body.strip() == b"LIVE":
                        break
                except OSError:
                    pass
            time.sleep(0.1)
        st, body = self.handle.admin_get("/listeners?format=json")
        ports = {item["name"]: item["local_address"]["socket_address"]["port_value"]
                 for item in json.loads(body).get("listener_statuses", [])}
        self.port = ports["public"]
        self.launcher_pid = proc.pid
        self.pid, self.exe = real_envoy_pid(proc.pid)

    def stats(self) -> dict[str, int]:
        _, body = self.handle.admin_get("/stats")
        out = {}
        for line in body.decode(errors="replace").splitlines():
            name, sep, value = line.rpartition(": ")
            if sep and value.strip().isdigit():
                out[name] = int(value)
        return out

    def rss(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


def real_envoy_pid(pid: int) -> tuple[int, str]:
    """The pid of the envoy binary: `.venv/bin/envoy` is a Python launcher that execs it (same
    pid); should a launcher ever fork instead, the binary is its child."""
    def exe(p: int) -> str:
        try:
            return os.readlink(f"/proc/{p}/exe")
        except OSError:
            return ""
    if os.path.basename(exe(pid)) == "envoy":
        return pid, exe(pid)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid and os.path.basename(exe(int(entry))) == "envoy":
                return int(entry), exe(int(entry))
    raise RuntimeError(f"cannot find the envoy binary process of launcher pid {pid} "
                       f"(/proc/{pid}/exe = {exe(pid)!r})")


# ---------------------------------------------------------------------------------------------
# Load


class Load:
    """The same request sequence against one Envoy: request i is due at t0 + i/rps and sent
    by worker i % workers on its own keep-alive connection (late requests go at once)."""

    def __init__(self, envoy: SoakEnvoy, filtered: bool, kinds: list[str], rps: float,
                 workers: int, t0: float, stop: threading.Event):
        self.envoy, self.filtered, self.kinds, self.rps = envoy, filtered, kinds, rps
        self.t0, self.stop = t0, stop
        self.done = Counter()
        self.failures: list[str] = []
        self.failed = 0
        self.sent = 0
        self.lag_max = 0.0
        self.connections = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._work, args=(w, workers), daemon=True)
                        for w in range(workers)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join()

    def _work(self, w: int, workers: int) -> None:
        conn = H1Conn(self.envoy.port)
        i = w
        while i < len(self.kinds) and not self.stop.is_set():
            due = self.t0 + i / self.rps
            wait = due - time.monotonic()
            if wait > 0:
                if self.stop.wait(wait):
                    break
            lag = -wait if wait < 0 else 0.0
            kind = self.kinds[i]
            method, path, headers, body = REQUESTS[kind]
            r = conn.request(method, path, headers + [("x-soak-kind", kind), ("x-soak-id", str(i))], body)
            why = check_answer(kind, i, self.filtered, r)
            with self.lock:
                self.sent += 1
                self.lag_max = max(self.lag_max, lag)
                if why:
                    self.failed += 1
                    if len(self.failures) < 10:
                        self.failures.append(f"#{i} {kind}: {why}")
                else:
                    self.done[kind] += 1
            i += workers
        with self.lock:
            self.connections += conn.opened
        conn.close()


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tests/soak/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=25.0, help="load duration (default 25)")
    p.add_argument("--rps", type=float, default=100.0, help="requests/s to each Envoy (default 100)")
    p.add_argument("--warmup", type=float, help="seconds before the RSS reference (default 20%%, at least 5)")
    p.add_argument("--all-routes", action="store_true", help="the filter on every route")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs, samples)")
    p.add_argument("--envoy", type=Path, default=ENVOY)
    p.add_argument("--wasm", type=Path, default=WASM)
    return p.parse_args(argv)


def median_rss(samples: list[tuple], idx: int, t_from: float, t_to: float) -> float:
    vals = [s[idx] for s in samples if t_from <= s[0] < t_to]
    return statistics.median(vals) if vals else float("nan")


def run(args: argparse.Namespace) -> int:
    if not os.access(args.envoy, os.X_OK) or not args.wasm.is_file():
        print(f"error: need {args.envoy} and {args.wasm} (scripts/bootstrap.sh)", file=sys.stderr)
        return 2
    warmup = args.warmup if args.warmup is not None else max(5.0, 0.2 * args.seconds)
    if warmup >= args.seconds - 3:
        print("error: --seconds must exceed the warm-up by more than 3 s", file=sys.stderr)
        return 2
    n = int(args.seconds * args.rps)
    rng = random.Random(args.seed)
    kinds = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX], k=n)
    workers = max(4, int(args.rps // 40))
    mode = "on every route (--all-routes)" if args.all_routes else \
        "per route as envoy/envoy.yaml ships it (/token, /revoke, /authorize, /register)"

    module_before = module_id(args.wasm)
    tmp = Path(tempfile.mkdtemp(prefix="mcp-oauth-guard-soak-"))
    with ExitStack() as stack:
        if args.keep:
            stack.callback(print, f"note: kept {tmp}", file=sys.stderr)
        else:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        upstream = RawUpstream(upstream_answer)
        stack.callback(upstream.stop)
        try:
            filt = SoakEnvoy("filter", shipped_config(upstream.port, args.wasm.resolve(), True,
                                                      args.all_routes), tmp, stack, args.envoy)
            base = SoakEnvoy("baseline", shipped_config(upstream.port, args.wasm.resolve(), False,
                                                        False), tmp, stack, args.envoy)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        upstream.start()
        print(f"soak: {args.seconds:.0f} s at {args.rps:.0f} requests/s to each Envoy "
              f"({n} requests each, {workers} keep-alive connections), filter {mode}")
        print(f"envoy pids: filter launcher {filt.launcher_pid} -> binary {filt.pid} ({filt.exe}); "
              f"baseline launcher {base.launcher_pid} -> binary {base.pid}")
        s0_f, s0_b = filt.stats(), base.stats()
        if not any(k.startswith("wasmcustom.mcp_oauth_guard.") for k in s0_f):
            print("error: the filter Envoy has no mcp_oauth_guard stats", file=sys.stderr)
            return 2
        if any(k.startswith("wasm") and "mcp_oauth_guard" in k for k in s0_b):
            print("error: the baseline Envoy runs the filter", file=sys.stderr)
            return 2

        stop = threading.Event()
        t0 = time.monotonic() + 0.2
        loads = [Load(filt, True, kinds, args.rps, workers, t0, stop),
                 Load(base, False, kinds, args.rps, workers, t0, stop)]
        samples: list[tuple] = []  # (t, rss filter, rss baseline, sent filter, sent baseline)
        for load in loads:
            load.start()
        try:
            while True:
                t = time.monotonic() - t0
                samples.append((t, filt.rss(), base.rss(), loads[0].sent, loads[1].sent))
                if all(not th.is_alive() for load in loads for th in load.threads):
                    break
                if t > args.seconds + 60:
                    stop.set()  # the client fell far behind; stop and report what was sent
                time.sleep(1.0)
        finally:
            stop.set()
            for load in loads:
                load.join()
        elapsed = time.monotonic() - t0
        time.sleep(1.5)
        samples.append((time.monotonic() - t0, filt.rss(), base.rss(), loads[0].sent, loads[1].sent))
        s1_f, s1_b = filt.stats(), base.stats()
        (tmp / "rss-samples.json").write_text(json.dumps(samples))

        problems: list[str] = []
        for load in loads:
            name = load.envoy.name
            if load.sent != n:
                problems.append(f"{name}: {load.sent} of {n} requests sent")
            if load.failed:
                problems.append(f"{name}: {load.failed} failed or wrong answers: "
                                + "; ".join(load.failures))
        # RSS: warm-up reference = median over [warmup, warmup+3 s); end = median of the last 3.
        t_end = samples[-1][0]
        f_w, b_w = (median_rss(samples, 1, warmup, warmup + 3), median_rss(samples, 2, warmup, warmup + 3))
        tail = samples[-3:]
        f_e, b_e = statistics.median(s[1] for s in tail), statistics.median(s[2] for s in tail)
        f_g, b_g = f_e - f_w, b_e - b_w
        rss_ok = f_g <= b_g + RSS_SLACK
        if not rss_ok:
            problems.append(f"filter RSS grew {f_g / MIB:+.2f} MiB, baseline {b_g / MIB:+.2f} MiB "
                            f"(limit: baseline + 1 MiB)")
        # Stats.
        g = "wasmcustom.mcp_oauth_guard."
        reload_stats = {k: v for k, v in s1_f.items() if k.startswith("wasm.") and
                        any(w in k for w in ("reload", "fail", "crash"))}
        for k, v in sorted(reload_stats.items()):
            if v:
                problems.append(f"stat {k} = {v}")
        created = {k: (s0_f.get(k), v) for k, v in s1_f.items() if k.endswith("runtime.v8.created")}
        for k, (a, b) in created.items():
            if a != b:
                problems.append(f"stat {k} {a} -> {b} (a VM was recreated)")
        refused = s1_f.get(g + "response.host_refused", -1)
        if refused != 0:
            problems.append(f"stat {g}response.host_refused = {refused}")
        rewrites = s1_f.get(g + "provider.oauth.rewrite.invalid_client", 0)
        if rewrites != loads[0].done["token_gone"]:
            problems.append(f"stat rewrite.invalid_client = {rewrites}, correct rewrites seen "
                            f"{loads[0].done['token_gone']}")
        if loads[0].sent == n:
            # Targeted answers held: every token answer except over-cap ones announced by
            # Content-Length (even ids), which pass at header time; chunked over-cap answers
            # (odd ids) are held until the cap is crossed, then released untouched.
            over_chunked = sum(1 for i, k in enumerate(kinds) if k == "overcap" and i % 2)
            want_buf = kinds.count("token_gone") + over_chunked
            got_buf = s1_f.get(g + "response.buffered", 0) - s0_f.get(g + "response.buffered", 0)
            got_over = s1_f.get(g + "response.over_cap", 0) - s0_f.get(g + "response.over_cap", 0)
            if got_buf != want_buf or got_over != over_chunked:
                problems.append(f"stats response.buffered {got_buf} (want {want_buf}), "
                                f"response.over_cap {got_over} (want {over_chunked})")
        for name, st in (("filter", s1_f), ("baseline", s1_b)):
            for k, v in st.items():
                if (k.endswith("rs_too_large") or k.endswith("downstream_rq_5xx")) and v:
                    problems.append(f"{name}: stat {k} = {v}")
        for env in (filt, base):
            for line in replay.envoy_problems(env.log):
                problems.append(f"{env.name} log: {line}")
        if upstream.errors:
            problems += [f"upstream: {e}" for e in upstream.errors[:5]]

    # Report.
    module_after = module_id(args.wasm)
    print(f"module: {module_before}" + ("" if module_after == module_before else
          f"; CHANGED during the run to {module_after} (Envoy loaded it at start)"))
    mix = ", ".join(f"{k} {loads[0].done[k]}" for k, _ in MIX)
    print(f"requests: filter {loads[0].sent} ({mix}), baseline {loads[1].sent}; failed or wrong: "
          f"filter {loads[0].failed}, baseline {loads[1].failed}; "
          f"connections opened {loads[0].connections}/{loads[1].connections}")
    print(f"rate: {loads[0].sent / elapsed:.0f}/s achieved over {elapsed:.1f} s, "
          f"max lag behind schedule {max(l.lag_max for l in loads) * 1000:.0f} ms (reported, not asserted)")
    print(f"RSS (VmRSS, MiB) after {warmup:.0f} s warm-up -> end ({t_end:.0f} s): "
          f"filter {f_w / MIB:.2f} -> {f_e / MIB:.2f} ({f_g / MIB:+.2f}), "
          f"baseline {b_w / MIB:.2f} -> {b_e / MIB:.2f} ({b_g / MIB:+.2f}); "
          f"filter peak {max(s[1] for s in samples) / MIB:.2f}; "
          f"limit filter growth <= baseline growth + 1 MiB: {'ok' if rss_ok else 'EXCEEDED'}")
    print("wasm: " + ", ".join(f"{k.split('.')[-1]} {v}" for k, v in sorted(reload_stats.items()))
          + "; " + ", ".join(f"v8 created {a} -> {b}" for a, b in created.values())
          + f"; host_refused {refused}; rewrite.invalid_client {rewrites}; "
          f"response.buffered {s1_f.get(g + 'response.buffered')}; "
          f"response.over_cap {s1_f.get(g + 'response.over_cap')}")
    for p in problems:
        print(f"PROBLEM {p}")
    print("RESULT: " + ("PASS" if not problems else f"FAIL ({len(problems)} problems)"))
    return 0 if not problems else 1


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    try:
        return run(args)
    except KeyboardInterrupt as exc:
        print(f"interrupted by {exc}; Envoys and the upstream are stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
