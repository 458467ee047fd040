"""The demo: Envoy with mcp-oauth-guard in front of a provider that forgets clients.

Starts, on 127.0.0.1 and free ports, the forgetful provider and a real Envoy running the
shipped envoy/envoy.yaml (addresses made local), then walks through a client's life and shows,
side by side, what the provider answers and what the client receives through the filter.
With --check it asserts every step for every provider shape and exits non-zero on a mismatch.
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVOY = os.path.join(ROOT, ".venv", "bin", "envoy")
WASM = os.path.join(ROOT, "target", "wasm32-wasip1", "release", "mcp_oauth_guard.wasm")
REDIRECT = "http://127.0.0.1:33418/callback"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(target, method, path, body=None, headers=None):
    """`target` is a port on 127.0.0.1, or "host:port" (docker-compose)."""
    host, port = target.rsplit(":", 1) if isinstance(target, str) else ("127.0.0.1", target)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    hdrs = dict(headers or {})
    if isinstance(body, dict):
        body = urlencode(body)
        hdrs.setdefault("content-type", "application/x-www-form-urlencoded")
    conn.request(method, path, body=body, headers=hdrs)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def local_envoy_config(provider_port, listen_port, admin_port):
    """envoy/envoy.yaml with local addresses: the same routes, filter and policy."""
    text = open(os.path.join(ROOT, "envoy", "envoy.yaml")).read()
    text = text.replace("/etc/envoy/mcp_oauth_guard.wasm", WASM)
    text = text.replace("address: 0.0.0.0, port_value: 10000", f"address: 127.0.0.1, port_value: {listen_port}")
    text = text.replace("port_value: 9901", f"port_value: {admin_port}")
    text = text.replace("address: oauth-provider, port_value: 9000", f"address: 127.0.0.1, port_value: {provider_port}")
    text = text.replace("address: mcp-server, port_value: 9000", f"address: 127.0.0.1, port_value: {provider_port}")
    return text


def wait_http(port, path, deadline=30.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            status, _, _ = request(port, "GET", path)
            if status < 500:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class Demo:
    def __init__(self, check):
        self.check = check
        self.failures = []
        self.shapes_run = 0
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="mcp-oauth-guard-demo-")

    # -- processes -------------------------------------------------------------------
    def start(self):
        self.provider = free_port()
        self.envoy = free_port()
        self.admin = free_port()
        self.procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "demo", "forgetful_provider.py"), "--port", str(self.provider)],
            stdout=subprocess.DEVNULL))
        cfg = os.path.join(self.tmp, "envoy.yaml")
        with open(cfg, "w") as f:
            f.write(local_envoy_config(self.provider, self.envoy, self.admin))
        self.envoy_log = os.path.join(self.tmp, "envoy.log")
        # Envoy's own --log-path is flushed lazily; stderr to a file is read back at once.
        self.log_file = open(self.envoy_log, "w")
        self.procs.append(subprocess.Popen(
            [ENVOY, "-c", cfg, "--concurrency", "1", "--base-id", str(self.admin), "-l", "info"],
            stdout=subprocess.DEVNULL, stderr=self.log_file))
        if not (wait_http(self.provider, "/healthz") and wait_http(self.admin, "/ready")):
            print(open(self.envoy_log).read()[-4000:] if os.path.exists(self.envoy_log) else "no envoy log")
            raise SystemExit("demo: Envoy or the provider did not start")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()

    # -- output ----------------------------------------------------------------------
    def say(self, text):
        print(text, flush=True)

    def show(self, label, status, headers, body):
        ctype = headers.get("content-type", "")
        self.say(f"    {label:<24} {status} {ctype}")
        if "www-authenticate" in headers:
            self.say(f"    {'':<24} WWW-Authenticate: {headers['www-authenticate']}")
        text = body.decode("utf-8", "replace")
        self.say(f"    {'':<24} {text[:150]}{'...' if len(text) > 150 else ''}")

    def expect(self, what, ok):
        if not ok:
            self.failures.append(what)
            self.say(f"    !! expected: {what}")

    # -- the story -------------------------------------------------------------------
    def client_with_tokens(self):
        status, _, body = request(self.envoy, "POST", "/register",
                                  json.dumps({"redirect_uris": [REDIRECT], "client_name": "demo"}),
                                  {"content-type": "application/json"})
        self.expect("registration succeeds", status == 201)
        client_id = json.loads(body)["client_id"]
        q = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "s"})
        status, headers, _ = request(self.envoy, "GET", "/authorize?" + q)
        code = parse_qs(urlsplit(headers.get("location", "")).query).get("code", [""])[0]
        self.expect("authorization redirects with a code", status == 302 and code)
        status, _, body = request(self.envoy, "POST", "/token", {
            "grant_type": "authorization_code", "code": code, "client_id": client_id, "redirect_uri": REDIRECT})
        self.expect("code exchange succeeds", status == 200)
        return client_id, json.loads(body)["refresh_token"]

    def run_shape(self, shape):
        self.shapes_run += 1
        request(self.provider, "POST", "/admin/shape?name=" + shape)
        self.say(f"\n== provider answers like {shape} ==")
        client_id, refresh = self.client_with_tokens()
        self.say(f"  1. client registered ({client_id[:13]}...), authorized, tokens issued")

        status, _, body = request(self.envoy, "POST", "/token", {
            "grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id})
        self.expect("refresh of a live client passes untouched (200)", status == 200)
        refresh = json.loads(body).get("refresh_token", refresh)
        self.say("  2. refresh while the provider knows the client: 200, untouched")

        request(self.provider, "POST", "/admin/forget?" + urlencode({"client_id": client_id}))
        self.say("  3. the provider forgets the client (deleted by an operator)")
        form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id}
        raw = request(self.provider, "POST", "/token", form)
        via = request(self.envoy, "POST", "/token", form)
        self.say("  4. the client refreshes:")
        self.show("provider says:", *raw)
        self.show("client receives:", *via)
        ok = via[0] == 401 and json.loads(via[2]).get("error") == "invalid_client" \
            and "no-store" in via[1].get("cache-control", "") and "www-authenticate" in via[1]
        self.expect("401 invalid_client with no-store and WWW-Authenticate", ok)
        self.expect("the provider's own answer was not already standard",
                    not (raw[0] == 401 and b'"invalid_client"' in raw[2]))
        self.say("     -> the client now registers again instead of replaying a dead client_id")

    def run_controls(self):
        self.say("\n== controls: what must not change ==")
        client_id, refresh = self.client_with_tokens()
        request(self.provider, "POST", "/admin/revoke?" + urlencode({"refresh_token": refresh}))
        form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id}
        raw = request(self.provider, "POST", "/token", form)
        via = request(self.envoy, "POST", "/token", form)
        self.say("  a. a revoked refresh token (the client is fine):")
        self.show("provider says:", *raw)
        self.show("client receives:", *via)
        self.expect("revoked refresh token stays a 4xx invalid_grant",
                    400 <= via[0] < 500 and json.loads(via[2]).get("error") == "invalid_grant")

        request(self.provider, "POST", "/admin/forget?" + urlencode({"client_id": client_id}))
        q = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT})
        via = request(self.envoy, "GET", "/authorize?" + q)
        self.say("  b. /authorize with the forgotten client:")
        self.show("client receives:", *via)
        self.expect("no redirect to the client's redirect_uri",
                    not via[1].get("location", "").startswith(REDIRECT))

        raw = request(self.provider, "POST", "/mcp", "{}", {"content-type": "application/json"})
        via = request(self.envoy, "POST", "/mcp", "{}", {"content-type": "application/json"})
        self.say("  c. MCP endpoint (filter not on this route): byte for byte the same")
        self.expect("MCP answer unchanged", raw[0] == via[0] and raw[2] == via[2])

    def report_stats(self):
        if self.admin is None:
            return
        _, _, stats = request(self.admin, "GET", "/stats?filter=mcp_oauth_guard")
        lines = [l for l in stats.decode().splitlines() if not l.endswith(": 0")]
        self.say("\n== Envoy stats (non-zero) ==")
        for line in lines:
            self.say("    " + line)
        logs = [l.split("mcp-oauth-guard: ", 1)[1] for l in open(self.envoy_log) if "answer rewritten" in l]
        self.say("== filter log lines ==")
        for line in logs[-6:]:
            self.say("    " + line.strip())
        # One invalid_client per provider shape, one invalid_grant for the revoked token.
        self.expect("one log line per rewrite", len(logs) == self.shapes_run + 1)
        secrets_seen = [l for l in open(self.envoy_log) if re.search(r"client-[0-9a-f]{16}", l)]
        self.expect("no client_id in Envoy's log", not secrets_seen)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="assert every step, all provider shapes")
    ap.add_argument("--shape", default="clerk", choices=["clerk", "okta", "entra", "github"])
    ap.add_argument("--envoy", help="use a running Envoy at host:port (docker-compose)")
    ap.add_argument("--provider", help="use a running forgetful provider at host:port")
    args = ap.parse_args()
    if args.envoy or args.provider:
        if not (args.envoy and args.provider):
            raise SystemExit("demo: --envoy and --provider go together")
        demo = Demo(args.check)
        demo.envoy, demo.provider, demo.admin = args.envoy, args.provider, None
        for _ in range(100):
            try:
                request(demo.envoy, "GET", "/healthz")
                break
            except OSError:
                time.sleep(0.2)
        return finish(demo, args, start=False)
    for path, what in ((ENVOY, "Envoy"), (WASM, "the filter")):
        if not os.path.exists(path):
            raise SystemExit(f"demo: {what} is missing at {path}; run scripts/bootstrap.sh")
    return finish(Demo(args.check), args, start=True)


def finish(demo, args, start):
    try:
        if start:
            demo.start()
        for shape in (["clerk", "okta", "entra", "github"] if args.check else [args.shape]):
            demo.run_shape(shape)
        demo.run_controls()
        demo.report_stats()
    finally:
        demo.stop()
    if demo.failures:
        print(f"\ndemo: {len(demo.failures)} expectation(s) failed")
        return 1
    print("\ndemo: every step behaved as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
