#!/usr/bin/env python3
"""Replay provider fixtures through Envoy with and without the mcp-oauth-guard filter.

Usage: tests/replay.sh DIR [--policy FILE] [--verbose] [--keep] [--no-filter-control]

One Python upstream serves each fixture's recorded answer (chosen by the
`x-fixture-id` request header). One Envoy has two listeners that route
everything to it: A with the wasm filter, B without. Each fixture's request is
sent to both, and A's answer is checked against the fixture's `expect.kind`
(see README.md here). Everything listens on 127.0.0.1 only, on ports the
kernel picks, and is stopped when the run ends.
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import Response, check  # noqa: E402
from fixtures import FIXTURE_ID_HEADER, Fixture, load_dir  # noqa: E402
from policy import generate_policy, policy_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ENVOY = ROOT / ".venv" / "bin" / "envoy"
DEFAULT_WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "mcp_oauth_guard.wasm"

LISTENER_A = "with_filter"
LISTENER_B = "without_filter"
CLUSTER = "replay_upstream"
ROUTE_TIMEOUT = "10s"
CLIENT_TIMEOUT_S = 15.0
STARTUP_TIMEOUT_S = 60.0
NO_BODY_STATUSES = frozenset({204, 304}) | set(range(100, 200))


class StartupError(Exception):
    """Envoy or the upstream did not come up; the run cannot say anything."""


# --------------------------------------------------------------------------
# Upstream: one recorded answer per fixture, chosen by x-fixture-id.


class ReplayHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "ReplayUpstream"

    def __getattr__(self, name: str):
        # Any method the fixtures use (GET, POST, PUT, DELETE, ...) lands here.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def _read_body(self) -> None:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                self.rfile.read(size + 2)
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)

    def _answer(self) -> None:
        self._read_body()
        fx = self.server.by_id.get(self.headers.get(FIXTURE_ID_HEADER) or "")
        if fx is None:
            status, headers = 500, [("content-type", "text/plain")]
            body = b"replay upstream: missing or unknown x-fixture-id\n"
        else:
            status, headers, body = fx.status, fx.response_headers, fx.response_body
        if status in NO_BODY_STATUSES:
            body = b""

        self.send_response_only(status)  # no Server or Date: only what was recorded
        for name, value in headers:
            self.send_header(name, value)
        if status not in NO_BODY_STATUSES:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, fmt: str, *args) -> None:
        with self.server.log_lock:
            self.server.log.write(f"{self.log_date_time_string()} {fmt % args}\n")
            self.server.log.flush()


class ReplayUpstream(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fixtures: list[Fixture], log_path: Path):
        super().__init__(("127.0.0.1", 0), ReplayHandler)
        self.by_id = {str(fx.index): fx for fx in fixtures}
        self.log = open(log_path, "a", encoding="utf-8")
        self.log_lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def server_close(self) -> None:
        super().server_close()
        self.log.close()


# --------------------------------------------------------------------------
# Envoy: one process, two listeners, one upstream cluster.


def wasm_filter(policy: str, wasm_path: Path) -> dict:
    """The filter entry of docs/policy-draft.md, with the policy as its configuration."""
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "mcp_oauth_guard",
                "root_id": "mcp_oauth_guard",
                "allow_on_headers_stop_iteration": True,
                "failure_policy": "FAIL_OPEN",
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": policy,
                },
                "vm_config": {
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm_path)}},
                },
            },
        },
    }


def listener(name: str, http_filters: list[dict], access_log: Path) -> dict:
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        },
    }
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name,
        "codec_type": "AUTO",
        "route_config": {
            "name": name,
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    # No retry_policy: a recorded 5xx must reach the client once, as sent.
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "route": {"cluster": CLUSTER, "timeout": ROUTE_TIMEOUT},
                        }
                    ],
                }
            ],
        },
        "http_filters": http_filters + [router],
        "access_log": [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3."
                    "FileAccessLog",
                    "path": str(access_log),
                    "log_format": {
                        "json_format": {
                            "fixture": f"%REQ({FIXTURE_ID_HEADER.upper()})%",
                            "status": "%RESPONSE_CODE%",
                            "details": "%RESPONSE_CODE_DETAILS%",
                            "flags": "%RESPONSE_FLAGS%",
                        }
                    },
                },
            }
        ],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def envoy_config(upstream_port: int, filter_a: dict | None, tmp: Path) -> dict:
    """Bootstrap for one Envoy: admin and both listeners on kernel-chosen loopback ports."""
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [
                listener(LISTENER_A, [filter_a] if filter_a else [], tmp / "access-A.log"),
                listener(LISTENER_B, [], tmp / "access-B.log"),
            ],
            "clusters": [
                {
                    "name": CLUSTER,
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "load_assignment": {
                        "cluster_name": CLUSTER,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "127.0.0.1",
                                                    "port_value": upstream_port,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ],
        },
    }


try:
    _PRCTL = ctypes.CDLL(None).prctl  # resolved here, not in the forked child
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """In the Envoy child: get SIGTERM when this harness ends, even by SIGKILL (Linux)."""
    if _PRCTL is not None:
        _PR_SET_PDEATHSIG = 1
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no Envoy log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Envoy:
    proc: subprocess.Popen
    admin: str = ""

    def admin_get(self, path: str) -> tuple[int, bytes]:
        host, port = self.admin.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_envoy(
    envoy_bin: Path, config: dict, tmp: Path, stack: ExitStack, log_level: str = "info"
) -> dict[str, int]:
    """Start Envoy (its stop goes on `stack`), wait for admin /ready = LIVE, return listener ports.

    Raises StartupError when Envoy does not start, exits, or is not ready in time.
    """
    config_path = tmp / "envoy.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    admin_path = tmp / "admin-address"
    cmd = [
        str(envoy_bin),
        "-c", str(config_path),
        "--concurrency", "1",
        "--use-dynamic-base-id",  # a base id no other Envoy on this host holds
        "--base-id-path", str(tmp / "base-id"),
        "--admin-address-path", str(admin_path),
        "--log-path", str(tmp / "envoy.log"),
        "--file-flush-interval-msec", "100",
        "-l", log_level,
    ]
    try:
        with open(tmp / "envoy.stdout", "wb") as out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
    except OSError as exc:
        raise StartupError(f"cannot run {envoy_bin}: {exc}") from None
    envoy = Envoy(proc)
    stack.callback(envoy.stop)

    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise StartupError(f"Envoy exited with status {proc.returncode} during startup")
            if time.monotonic() > deadline:
                raise StartupError(f"Envoy not ready after {STARTUP_TIMEOUT_S:.0f}s")
            if not envoy.admin and admin_path.exists():
                envoy.admin = admin_path.read_text().strip()
            if envoy.admin:
                try:
                    status, body = envoy.admin_get("/ready")
                    if status == 200 and body.strip() == b"LIVE":
                        break
                except OSError:
                    pass
            time.sleep(0.1)

        status, body = envoy.admin_get("/listeners?format=json")
        ports = {
            item["name"]: item["local_address"]["socket_address"]["port_value"]
            for item in json.loads(body).get("listener_statuses", [])
        }
        if status != 200 or LISTENER_A not in ports or LISTENER_B not in ports:
            raise StartupError(f"admin /listeners lacks a listener: {status} {body[:300]!r}")
    except (OSError, ValueError, KeyError) as exc:
        raise StartupError(f"cannot query Envoy admin: {type(exc).__name__}: {exc}") from None
    return ports


def access_log_entry(path: Path, fixture_id: int, wait_s: float = 1.5) -> dict | None:
    """The access-log record of one fixture on one listener (Envoy flushes every 100 ms)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("fixture") == str(fixture_id):
                    return rec
        except OSError:
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


# --------------------------------------------------------------------------
# Client: exactly the recorded request, plus Host, framing and x-fixture-id.


def send(port: int, fx: Fixture) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT_S)
    try:
        has_host = fx.request_header("host") is not None
        conn.putrequest(fx.method, fx.path, skip_host=has_host, skip_accept_encoding=True)
        for name, value in fx.request_headers:
            conn.putheader(name, value)
        conn.putheader(FIXTURE_ID_HEADER, str(fx.index))
        if fx.request_body or fx.method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(fx.request_body)))
        conn.endheaders(fx.request_body or None)
        resp = conn.getresponse()
        return Response(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


# --------------------------------------------------------------------------
# Reporting.


def show_body(body: bytes, limit: int = 4000) -> str:
    text = body[:limit].decode("utf-8", "backslashreplace")
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)
    return text + (f"... ({len(body)} bytes)" if len(body) > limit else "")


def verbose_block(
    fx: Fixture, a: Response | None, b: Response | None, tmp: Path, control: bool
) -> str:
    label_a = "A, control without filter" if control else "with filter"
    lines = [f"    request: {fx.method} {fx.path}"]
    for label, resp, log in (("without filter", b, "access-B.log"), (label_a, a, "access-A.log")):
        if resp is None:
            continue
        rec = access_log_entry(tmp / log, fx.index) or {}
        lines.append(
            f"    {label}: {resp.status} (envoy details={rec.get('details', '?')}"
            f" flags={rec.get('flags', '?')})"
        )
        for name, value in resp.headers:
            lines.append(f"      {name}: {value}")
        lines.append(f"      body: {show_body(resp.body)}")
    return "\n".join(lines)


def envoy_problems(log_path: Path, limit: int = 10) -> list[str]:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    bad = [ln for ln in text.splitlines() if re.search(r"\]\[(error|critical)\]", ln)]
    return bad[:limit] + ([f"... {len(bad) - limit} more"] if len(bad) > limit else [])


# --------------------------------------------------------------------------
# The run.


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="tests/replay.sh",
        description="Replay provider fixtures through Envoy with and without the filter.",
    )
    p.add_argument("dir", type=Path, help="folder of *.json fixtures")
    p.add_argument("--policy", type=Path, help="policy file for the filter (default: generated)")
    p.add_argument("--verbose", action="store_true", help="also print headers and bodies")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (config, logs)")
    p.add_argument(
        "--no-filter-control",
        action="store_true",
        help="control run: listener A has no filter either (proves the checks can fail)",
    )
    p.add_argument("--print-policy", action="store_true", help="print the policy and exit")
    p.add_argument(
        "--log-level",
        default="info",
        choices=["trace", "debug", "info", "warning", "error"],
        help="Envoy log level (default info; tests/log-secrets.sh uses trace)",
    )
    p.add_argument("--envoy", type=Path, default=DEFAULT_ENVOY, help=f"default {DEFAULT_ENVOY}")
    p.add_argument("--wasm", type=Path, default=DEFAULT_WASM, help=f"default {DEFAULT_WASM}")
    return p.parse_args(argv)


def note(msg: str) -> None:
    print(f"note: {msg}", file=sys.stderr, flush=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        print(f"error: {args.dir} is not a directory", file=sys.stderr)
        return 2
    loaded = load_dir(args.dir)

    if args.policy:
        try:
            policy = args.policy.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot read policy: {exc}", file=sys.stderr)
            return 2
    else:
        doc, notes = generate_policy(loaded.fixtures)
        for msg in notes:
            note(msg)
        policy = policy_text(doc)
    if args.print_policy:
        sys.stdout.write(policy)
        return 0

    if args.no_filter_control:
        note("--no-filter-control: listener A runs WITHOUT the filter; failures are expected")
        filter_a = None
    elif not args.wasm.is_file():
        print(
            f"error: wasm module {args.wasm} not found; build it "
            "(cargo build --release --target wasm32-wasip1 -p mcp-oauth-guard), pass --wasm, "
            "or run the control with --no-filter-control",
            file=sys.stderr,
        )
        return 2
    else:
        filter_a = wasm_filter(policy, args.wasm.resolve())
    if not os.access(args.envoy, os.X_OK):
        print(f"error: Envoy {args.envoy} not found (run scripts/bootstrap.sh)", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="mcp-oauth-guard-replay-"))
    (tmp / "policy.yaml").write_text(policy, encoding="utf-8")
    with ExitStack() as stack:
        if args.keep:
            stack.callback(note, f"kept {tmp} (envoy.json, policy.yaml, *.log)")
        else:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)

        upstream = ReplayUpstream(loaded.fixtures, tmp / "upstream.log")
        stack.callback(upstream.server_close)
        # Envoy is forked before the upstream's thread starts: no thread exists at fork time.
        try:
            ports = start_envoy(
                args.envoy, envoy_config(upstream.port, filter_a, tmp), tmp, stack,
                log_level=args.log_level,
            )
        except StartupError as exc:
            print(f"error: Envoy startup failed: {exc}", file=sys.stderr)
            print(f"--- Envoy log tail ({tmp / 'envoy.log'}) ---", file=sys.stderr)
            print(log_tail(tmp / "envoy.log"), file=sys.stderr)
            out = (tmp / "envoy.stdout").read_text(errors="replace")[-4000:]
            if out.strip():
                print(f"--- Envoy stdout/stderr ---\n{out}", file=sys.stderr)
            return 2
        threading.Thread(target=upstream.serve_forever, name="upstream", daemon=True).start()
        stack.callback(upstream.shutdown)

        errors = {index: (name, why) for index, name, why in loaded.errors}
        by_index = {fx.index: fx for fx in loaded.fixtures}
        passed = failed = 0
        for index in range(loaded.total):
            if index in errors:
                name, why = errors[index]
                line = f"FAIL {name} ?: {why}"
            else:
                line = replay_one(by_index[index], ports, tmp, args)
            if line.startswith("PASS "):
                passed += 1
            else:
                failed += 1
            print(line, flush=True)

        if filter_a is not None:
            for line in envoy_problems(tmp / "envoy.log"):
                note(f"envoy log: {line}")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


def replay_one(fx: Fixture, ports: dict, tmp: Path, args: argparse.Namespace) -> str:
    """Send one fixture to both listeners, check it, and return its result line."""
    a = b = None
    try:
        b = send(ports[LISTENER_B], fx)
        a = send(ports[LISTENER_A], fx)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        side = "without" if b is None else "with"
        reasons = [f"request {side} filter failed: {type(exc).__name__}: {exc}"]
    else:
        reasons = check(fx, a, b)
    if reasons:
        line = f"FAIL {fx.file} {fx.kind}: {'; '.join(reasons)}"
    else:
        line = f"PASS {fx.file} {fx.kind} {b.status} -> {a.status}"
    if args.verbose:
        line += "\n" + verbose_block(fx, a, b, tmp, args.no_filter_control)
    return line


def run_until_interrupted(run_fn, args: argparse.Namespace) -> int:
    """run_fn(args), with SIGINT, SIGTERM and SIGHUP turned into a clean exit 130 (run_fn's
    ExitStack stops Envoy and the upstream on the way out)."""
    # SIGINT too: a shell starts background jobs with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    try:
        return run_fn(args)
    except KeyboardInterrupt as exc:
        print(f"interrupted by {exc}; Envoy and the upstream are stopped", file=sys.stderr)
        return 130


def main(argv: list[str]) -> int:
    return run_until_interrupted(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
