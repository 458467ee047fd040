#!/usr/bin/env python3
"""URL identity end to end (issue 6): BRIEF field cases 7-12 through a real Envoy.

Usage: tests/url-identity/run.sh [--verbose] [--keep] [--table]

One upstream (world.py) plays the MCP servers and the authorization server of the field
cases. One Envoy has three listeners that all route to it: `control` without the filter,
`serve` with the filter answering resource metadata from the policy, and `correct` with
the filter correcting the upstream's own documents. Every case runs on all three: it must
FAIL on `control` (so the check can fail) and PASS on both filtered listeners (or be marked
n/a where that mode does not apply). The clients are Python: a strict RFC 9728/8414 client
and one that discovers like the MCP TypeScript SDK. Public host names in URLs never leave
this machine: every request goes to 127.0.0.1 with the URL's host in the Host header.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world import World  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENVOY = Path(os.environ.get("ENVOY_BIN", ROOT / ".venv" / "bin" / "envoy"))
WASM = Path(os.environ.get("MCP_OAUTH_GUARD_WASM",
                           ROOT / "target" / "wasm32-wasip1" / "release" / "mcp_oauth_guard.wasm"))
LISTENERS = ("control", "serve", "correct")
# Issue 5 and 6 together (client lifecycle and URL identity), for the composition checks.
COMPOSED = "composed"
# main's `mode: observe` with the serve policy: decisions logged, traffic unchanged.
OBSERVE = "observe"
PRM = "/.well-known/oauth-protected-resource"

PROVIDER = """version: 1
providers:
  - name: clerk
    preset: auto
    endpoints: {token: [/token], authorization: [/authorize], registration: [/register]}
"""

POLICY_SERVE = PROVIDER + """resources:
  - resource: https://api.example.com/mcp
    aliases: [https://api.example.com/mcp/, https://api.example.com]
    authorization_servers: [https://clerk.example.com]
    metadata: {mode: serve, scopes_supported: [mcp]}
    max_age: 600
    cors: {allow_origins: ["*"]}
    authorization_server_metadata: {upstream_path: /.well-known/openid-configuration}
  - resource: https://bare.example.com/mcp
    authorization_servers: [https://clerk.example.com]
    metadata: {mode: serve}
  - resource: https://pathonly.example.com/mcp
    aliases: [https://pathonly.example.com]
    authorization_servers: [https://clerk.example.com]
    metadata: {mode: serve}
"""

POLICY_CORRECT = PROVIDER + """resources:
  - resource: https://api.example.com/mcp
    aliases: [https://api.example.com/mcp/, https://api.example.com]
    authorization_servers: [https://example.com]
    metadata: {mode: correct, upstream_path: /.well-known/oauth-protected-resource}
    max_age: 600
    authorization_server_metadata:
      upstream_path: /.well-known/openid-configuration
      fix_issuer: true
  - resource: https://pathonly.example.com/mcp
    aliases: [https://pathonly.example.com]
    authorization_servers: [https://clerk.example.com]
    metadata: {mode: correct, upstream_path: /.well-known/oauth-protected-resource/mcp}
"""


SIGNING_KEY = base64.b64encode(secrets.token_bytes(32)).decode()

POLICY_COMPOSED = f"""version: 1
providers:
  - name: clerk
    preset: auto
    endpoints: {{token: [/token], authorization: [/authorize], registration: [/register]}}
    lifecycle:
      registration_epoch: "2020-01-01T00:00:00Z"
      sign_client_ids: true
      signing_keys: [{{id: k1, secret: "{SIGNING_KEY}"}}]
      mcp_endpoints: [/mcp]
resources:
  - resource: https://api.example.com/mcp
    aliases: [https://api.example.com/mcp/, https://api.example.com]
    authorization_servers: [https://clerk.example.com]
    metadata: {{mode: serve}}
"""


class Failed(Exception):
    """A client gave up: the reason is the field case's symptom."""


# --------------------------------------------------------------------------------------
# Envoy.


def wasm_filter(policy: str) -> dict:
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
                    "code": {"local": {"filename": str(WASM)}},
                },
            },
        },
    }


def listener(name: str, policy: str | None) -> dict:
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name,
        "route_config": {
            "name": name,
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [{
                    "match": {"prefix": "/"},
                    "route": {"cluster": "world", "timeout": "10s"},
                    "request_headers_to_add": [
                        {"header": {"key": "x-listener", "value": name},
                         "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
                    ],
                }],
            }],
        },
        "http_filters": ([wasm_filter(policy)] if policy else []) + [router],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm,
        }]}],
    }


def envoy_config(world_port: int) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [
                listener("control", None),
                listener("serve", POLICY_SERVE),
                listener("correct", POLICY_CORRECT),
                listener(COMPOSED, POLICY_COMPOSED),
                listener(OBSERVE, POLICY_SERVE + "mode: observe\n"),
            ],
            "clusters": [{
                "name": "world",
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {"cluster_name": "world", "endpoints": [{"lb_endpoints": [{
                    "endpoint": {"address": {"socket_address": {
                        "address": "127.0.0.1", "port_value": world_port}}}}]}]},
            }],
        },
    }


try:
    _PRCTL = ctypes.CDLL(None).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Envoy:
    proc: subprocess.Popen
    tmp: Path
    admin: str = ""
    ports: dict = field(default_factory=dict)

    def get(self, path: str) -> tuple[int, bytes]:
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

    def log(self) -> str:
        try:
            return (self.tmp / "envoy.log").read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, text: str, seconds: float = 5.0) -> str:
        """The log once it holds `text` (Envoy flushes it every 100 ms), or as it is then."""
        deadline = time.monotonic() + seconds
        while text not in (log := self.log()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return log

    def counter(self, name: str) -> int:
        status, body = self.get("/stats?format=json&filter=" + quote(name))
        if status != 200:
            return -1
        for stat in json.loads(body).get("stats", []):
            if stat.get("name") == name:
                return int(stat.get("value", 0))
        return 0


def start_envoy(world_port: int, tmp: Path, stack: ExitStack) -> Envoy:
    cfg = tmp / "envoy.json"
    cfg.write_text(json.dumps(envoy_config(world_port), indent=1))
    cmd = [str(ENVOY), "-c", str(cfg), "--concurrency", "1", "--use-dynamic-base-id",
           "--base-id-path", str(tmp / "base-id"), "--admin-address-path", str(tmp / "admin"),
           "--log-path", str(tmp / "envoy.log"), "--file-flush-interval-msec", "100", "-l", "info"]
    with open(tmp / "envoy.stdout", "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    envoy = Envoy(proc, tmp)
    stack.callback(envoy.stop)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"Envoy exited with {proc.returncode}:\n{envoy.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError("Envoy not ready after 60 s")
        if not envoy.admin and (tmp / "admin").exists():
            envoy.admin = (tmp / "admin").read_text().strip()
        if envoy.admin:
            try:
                status, body = envoy.get("/ready")
                if status == 200 and body.strip() == b"LIVE":
                    break
            except OSError:
                pass
        time.sleep(0.1)
    _, body = envoy.get("/listeners?format=json")
    envoy.ports = {
        item["name"]: item["local_address"]["socket_address"]["port_value"]
        for item in json.loads(body).get("listener_statuses", [])
    }
    return envoy


# --------------------------------------------------------------------------------------
# Clients. Every connection goes to 127.0.0.1:<listener port>; the URL only names the Host.


@dataclass
class Resp:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name]
        return ", ".join(values) if values else None

    def json(self) -> dict:
        return json.loads(self.body)


class Net:
    def __init__(self, port: int):
        self.port = port

    def request(self, method: str, url: str, headers: dict | None = None,
                body: bytes | None = None) -> Resp:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Failed(f"not a URL a client can fetch: {url}")
        host = parts.netloc.split("@")[-1]
        default = ":443" if parts.scheme == "https" else ":80"
        if host.endswith(default):
            host = host[: -len(default)]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            return Resp(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()


def normal(url: str) -> str:
    """RFC 3986 section 6.2.2/6.2.3 normal form: case, default port, empty path is `/`."""
    p = urlsplit(url)
    host = (p.hostname or "").lower()
    port = p.port
    if port and port == (443 if p.scheme.lower() == "https" else 80):
        port = None
    return f"{p.scheme.lower()}://{host}{f':{port}' if port else ''}{p.path or '/'}"


def origin_of(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}"


def rfc_path_inserted(url: str) -> str:
    """RFC 9728 section 3.1: only a terminating slash right after the host is removed."""
    p = urlsplit(url)
    path = "" if p.path in ("", "/") else p.path
    return f"{origin_of(url)}{PRM}{path}"


def sdk_path_inserted(url: str) -> str:
    """The TypeScript SDK strips one trailing slash before inserting the suffix."""
    p = urlsplit(url)
    path = p.path[:-1] if p.path.endswith("/") else p.path
    return f"{origin_of(url)}{PRM}{path}"


def sdk_resource_allowed(requested: str, configured: str) -> bool:
    """checkResourceAllowed of @modelcontextprotocol/sdk (shared/auth-utils)."""
    r, c = urlsplit(normal(requested)), urlsplit(normal(configured))
    if (r.scheme, r.netloc) != (c.scheme, c.netloc) or len(r.path) < len(c.path):
        return False
    rp = r.path if r.path.endswith("/") else r.path + "/"
    cp = c.path if c.path.endswith("/") else c.path + "/"
    return rp.startswith(cp)


INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "url-identity-e2e", "version": "0"}}}).encode()
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def challenge_document(resp: Resp) -> str | None:
    value = resp.header("www-authenticate") or ""
    if value.split(" ")[0].lower() != "bearer":
        return None
    m = re.search(r'resource_metadata="([^"]*)"', value)
    return m.group(1) if m else None


@dataclass
class Trace:
    """What one client saw, for the report and the README table."""
    documents: list[str] = field(default_factory=list)
    resource: str | None = None
    issuer: str | None = None
    steps: list[str] = field(default_factory=list)


def fetch_document(net: Net, url: str, trace: Trace) -> dict | None:
    resp = net.request("GET", url, {"Accept": "application/json", "MCP-Protocol-Version": "2025-06-18"})
    trace.steps.append(f"GET {url} -> {resp.status}")
    if resp.status != 200:
        return None
    try:
        doc = resp.json()
    except ValueError:
        raise Failed(f"{url}: not JSON") from None
    trace.documents.append(url)
    return doc


def discover_resource(net: Net, server_url: str, strategy: str, trace: Trace) -> dict:
    """Protected resource metadata for `server_url`, checked as the strategy's client would.

    hint: only the 401's resource_metadata; resource must be the URL used (RFC 9728 3.3).
    path: only the RFC 9728 3.1 path-inserted URL; resource must be the server URL.
    root: only the root URL; resource must be the origin.
    path-then-root: path-inserted, then root; resource must be the server URL (strict).
    sdk: the TypeScript SDK: 401 hint if any, else path-inserted (slash stripped) then
         root; resource checked with checkResourceAllowed (prefix).
    """
    if strategy in ("hint", "sdk"):
        resp = net.request("POST", server_url, MCP_HEADERS, INITIALIZE)
        trace.steps.append(f"POST {server_url} -> {resp.status} www-authenticate={resp.header('www-authenticate')!r}")
        hint = challenge_document(resp) if resp.status == 401 else None
        if hint:
            doc = fetch_document(net, hint, trace)
            if doc is None:
                raise Failed(f"the 401's resource_metadata {hint} does not answer")
            check_resource(doc, server_url, "sdk" if strategy == "sdk" else "exact")
            return doc
        if strategy == "hint":
            raise Failed("no Bearer resource_metadata in the 401")
    if strategy in ("path", "path-then-root", "sdk"):
        first = sdk_path_inserted(server_url) if strategy == "sdk" else rfc_path_inserted(server_url)
        doc = fetch_document(net, first, trace)
        if doc is not None:
            check_resource(doc, server_url, "sdk" if strategy == "sdk" else "exact")
            return doc
        if strategy == "path" or urlsplit(server_url).path in ("", "/"):
            raise Failed(f"no protected resource metadata at {first}")
    root = f"{origin_of(server_url)}{PRM}"
    doc = fetch_document(net, root, trace)
    if doc is None:
        raise Failed("no protected resource metadata at any location")
    if strategy == "root":
        check_resource(doc, origin_of(server_url), "exact")
    else:
        check_resource(doc, server_url, "sdk" if strategy == "sdk" else "exact")
    return doc


def check_resource(doc: dict, expected: str, rule: str) -> None:
    got = doc.get("resource")
    if not isinstance(got, str):
        raise Failed("document has no resource")
    ok = normal(got) == normal(expected) if rule == "exact" else sdk_resource_allowed(expected, got)
    if not ok:
        raise Failed(f"resource mismatch: document names {got}, client uses {expected}")


def discover_server(net: Net, issuer: str, trace: Trace) -> dict:
    """RFC 8414 / OpenID discovery in the SDK's order, with the RFC 8414 3.3 issuer check."""
    p = urlsplit(issuer)
    path = p.path[:-1] if p.path.endswith("/") else p.path
    base = origin_of(issuer)
    if path:
        urls = [f"{base}/.well-known/oauth-authorization-server{path}",
                f"{base}/.well-known/openid-configuration{path}",
                f"{base}{path}/.well-known/openid-configuration"]
    else:
        urls = [f"{base}/.well-known/oauth-authorization-server",
                f"{base}/.well-known/openid-configuration"]
    for url in urls:
        doc = fetch_document(net, url, trace)
        if doc is not None:
            trace.issuer = doc.get("issuer")
            if doc.get("issuer") != issuer:
                raise Failed(f"issuer mismatch: metadata from {url} says {doc.get('issuer')!r}, expected {issuer!r}")
            return doc
    raise Failed(f"no authorization server metadata for {issuer}")


def authorize_and_refresh(net: Net, meta: dict, resource: str | None, refresh_resource: str | None,
                          trace: Trace) -> str:
    """Code flow (the AS answers /authorize at once) and one refresh; returns an access token."""
    q = {"response_type": "code", "client_id": "client-1", "redirect_uri": "http://127.0.0.1:9/cb",
         "code_challenge": "x" * 43, "code_challenge_method": "S256", "state": "s"}
    if resource:
        q["resource"] = resource
    resp = net.request("GET", f"{meta['authorization_endpoint']}?{urlencode(q)}")
    trace.steps.append(f"authorize resource={resource} -> {resp.status}")
    if resp.status != 302:
        raise Failed(f"authorization refused: {resp.status} {resp.body[:100]!r}")
    code = parse_qs(urlsplit(resp.header("location") or "").query).get("code", [""])[0]
    tokens = token_request(net, meta, {"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": q["redirect_uri"], "client_id": "client-1",
                                       "code_verifier": "v" * 43}, resource, trace)
    tokens = token_request(net, meta, {"grant_type": "refresh_token",
                                       "refresh_token": tokens["refresh_token"],
                                       "client_id": "client-1"}, refresh_resource, trace)
    return tokens["access_token"]


def token_request(net: Net, meta: dict, form: dict, resource: str | None, trace: Trace) -> dict:
    if resource:
        form = {**form, "resource": resource}
    resp = net.request("POST", meta["token_endpoint"],
                       {"Content-Type": "application/x-www-form-urlencoded"},
                       urlencode(form).encode())
    trace.steps.append(f"token {form['grant_type']} resource={resource} -> {resp.status}")
    if resp.status != 200:
        raise Failed(f"token request refused: {resp.status} {resp.body[:100]!r}")
    return resp.json()


def call_mcp(net: Net, server_url: str, access_token: str, trace: Trace) -> None:
    resp = net.request("POST", server_url, {**MCP_HEADERS, "Authorization": f"Bearer {access_token}"},
                       INITIALIZE)
    trace.steps.append(f"POST {server_url} with token -> {resp.status}")
    if resp.status != 200:
        raise Failed(f"the MCP server refused the token: {resp.status}")


def sdk_session(net: Net, server_url: str, trace: Trace, refresh_slash: bool = False) -> None:
    """Discovery, authorization, refresh and one call, as the TypeScript SDK does them: it
    sends the metadata's `resource` verbatim at /authorize and /token."""
    prm = discover_resource(net, server_url, "sdk", trace)
    trace.resource = prm["resource"]
    servers = prm.get("authorization_servers") or []
    if not servers:
        raise Failed("no authorization_servers")
    meta = discover_server(net, servers[0], trace)
    resource = prm["resource"]
    refresh = resource + "/" if refresh_slash and not resource.endswith("/") else resource
    token = authorize_and_refresh(net, meta, resource, refresh, trace)
    call_mcp(net, server_url, token, trace)


# --------------------------------------------------------------------------------------
# The cases.


@dataclass
class Ctx:
    envoy: Envoy
    world: World
    verbose: bool

    def net(self, listener: str) -> Net:
        return Net(self.envoy.ports[listener])


def case7(ctx: Ctx, listener: str, trace: Trace) -> None:
    """Client uses https://api.example.com/mcp/; the document must name that URL."""
    net = ctx.net(listener)
    discover_resource(net, "https://api.example.com/mcp/", "hint", trace)
    discover_resource(net, "https://api.example.com/mcp/", "path", trace)


def case8(ctx: Ctx, listener: str, trace: Trace) -> None:
    """Server at /mcp; a root-named document must not be the one a /mcp client settles on."""
    discover_resource(ctx.net(listener), "https://api.example.com/mcp", "path-then-root", trace)


def case9(ctx: Ctx, listener: str, trace: Trace) -> None:
    """Trailing slash on refresh only (and other spellings): the AS compares strings."""
    net = ctx.net(listener)
    meta = {"authorization_endpoint": "https://clerk.example.com/authorize",
            "token_endpoint": "https://clerk.example.com/token"}
    ctx.world.take_seen(listener)
    token = authorize_and_refresh(net, meta, "https://api.example.com/mcp",
                                  "https://api.example.com/mcp/", trace)
    call_mcp(net, "https://api.example.com/mcp", token, trace)
    token = authorize_and_refresh(net, meta, "https://API.example.com:443/mcp/",
                                  "https://api.example.com", trace)
    call_mcp(net, "https://api.example.com/mcp", token, trace)
    seen = {r for _, r in ctx.world.take_seen(listener)}
    if seen != {"https://api.example.com/mcp"}:
        raise Failed(f"the authorization server saw several identities: {sorted(map(str, seen))}")


def case10(ctx: Ctx, listener: str, trace: Trace) -> None:
    """No challenge, no resource metadata, AS metadata at the origin naming another issuer."""
    net = ctx.net(listener)
    url = "https://bare.example.com/mcp"
    try:
        prm = discover_resource(net, url, "sdk", trace)
    except Failed as exc:
        # The MCP 2025-03-26 fallback: the origin is the authorization server.
        trace.steps.append(f"no resource metadata ({exc}); falling back to the origin")
        discover_server(net, "https://bare.example.com", trace)
        raise Failed("unreachable: the origin's metadata names another issuer") from None
    discover_server(net, prm["authorization_servers"][0], trace)


def case11(ctx: Ctx, listener: str, trace: Trace) -> None:
    """Path-only and root-only probers both find a document, for both kinds of server."""
    net = ctx.net(listener)
    for url in ("https://api.example.com/mcp", "https://pathonly.example.com/mcp"):
        discover_resource(net, url, "path", trace)
        discover_resource(net, url, "root", trace)


def case12(ctx: Ctx, listener: str, trace: Trace) -> None:
    """The resource metadata's authorization server must be the issuer its metadata states."""
    net = ctx.net(listener)
    prm = discover_resource(net, "https://api.example.com/mcp", "sdk", trace)
    discover_server(net, prm["authorization_servers"][0], trace)


CASES = [
    ("field case 7: /mcp vs /mcp/", case7, ("serve", "correct")),
    ("field case 8: root document names the origin, server at /mcp", case8, ("serve", "correct")),
    ("field case 9: one resource value at authorize and refresh", case9, ("serve", "correct")),
    ("field case 10: no challenge, no metadata, issuer on another host", case10, ("serve",)),
    ("field case 11: path-inserted and root both answer", case11, ("serve", "correct")),
    ("field case 12: authorization server named as its issuer", case12, ("serve", "correct")),
]

# Spellings a user might type, for the README table (SDK-style client, full session).
SPELLINGS = [
    "https://api.example.com",
    "https://api.example.com/",
    "https://API.example.com:443/mcp/",
    "https://api.example.com/mcp",
    "https://api.example.com/mcp/",
]


# --------------------------------------------------------------------------------------
# Checks beyond the field cases: headers, CORS, OPTIONS, bytes.


def checks(ctx: Ctx) -> list[tuple[str, str | None]]:
    """(name, failure or None) for the header-level and byte-level properties."""
    out: list[tuple[str, str | None]] = []

    def check(name: str, fn) -> None:
        try:
            fn()
            out.append((name, None))
        except (Failed, AssertionError, OSError, ValueError, KeyError) as exc:
            out.append((name, f"{type(exc).__name__}: {exc}"))

    control, serve, correct = (ctx.net(n) for n in LISTENERS)

    def cache_control() -> None:
        url = "https://api.example.com/.well-known/oauth-protected-resource/mcp"
        for net, name in ((serve, "serve"), (correct, "correct")):
            r = net.request("GET", url)
            assert r.status == 200, f"{name}: {r.status}"
            assert r.header("cache-control") == "public, max-age=600", f"{name}: {r.header('cache-control')}"
            assert r.header("content-type") == "application/json", f"{name}: {r.header('content-type')}"
            assert int(r.header("content-length") or -1) == len(r.body), f"{name}: content-length"
            assert r.json()["resource"] == "https://api.example.com/mcp", f"{name}: {r.body!r}"
        r = control.request("GET", "https://api.example.com/.well-known/oauth-protected-resource")
        assert r.header("cache-control") is None, "control has no cache-control (test can fail)"
        r = correct.request("GET", "https://example.com/.well-known/oauth-authorization-server")
        assert r.status == 200 and r.header("cache-control") == "public, max-age=600", r.headers

    def head_and_methods() -> None:
        r = serve.request("HEAD", "https://api.example.com/.well-known/oauth-protected-resource")
        assert r.status == 200 and r.body == b"", (r.status, r.body)
        r = serve.request("POST", "https://api.example.com/.well-known/oauth-protected-resource", {}, b"")
        c = control.request("POST", "https://api.example.com/.well-known/oauth-protected-resource", {}, b"")
        assert (r.status, r.body) == (c.status, c.body), "POST at a document location passes through"

    def cors_and_options() -> None:
        r = serve.request("POST", "https://api.example.com/mcp", {**MCP_HEADERS, "Origin": "https://app.example"}, INITIALIZE)
        assert r.status == 401, r.status
        assert r.header("access-control-expose-headers") == "WWW-Authenticate", r.headers
        assert r.header("access-control-allow-origin") == "*", r.headers
        assert challenge_document(r) == "https://api.example.com/.well-known/oauth-protected-resource/mcp", r.header("www-authenticate")
        pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization"}
        a = serve.request("OPTIONS", "https://api.example.com/mcp", pre)
        b = control.request("OPTIONS", "https://api.example.com/mcp", pre)
        strip = lambda h: sorted((k.lower(), v) for k, v in h if k.lower() not in ("date", "x-envoy-upstream-service-time"))  # noqa: E731
        assert (a.status, strip(a.headers), a.body) == (b.status, strip(b.headers), b.body), "OPTIONS untouched"
        assert a.status == 204

    def bearer_error_kept() -> None:
        r = serve.request("POST", "https://api.example.com/mcp", {**MCP_HEADERS, "Authorization": "Bearer stale"}, INITIALIZE)
        want = 'Bearer realm="mcp", error="invalid_token", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp"'
        assert r.status == 401 and r.header("www-authenticate") == want, r.header("www-authenticate")
        c = control.request("POST", "https://api.example.com/mcp", {**MCP_HEADERS, "Authorization": "Bearer stale"}, INITIALIZE)
        assert c.header("www-authenticate") == 'Bearer realm="mcp", error="invalid_token"'

    def body_bytes() -> None:
        ctx.world.bodies.clear()
        form = (b"grant_type=refresh_token&refresh_token=RT%2B1&client_id=c+1"
                b"&resource=https%3A%2F%2FAPI.example.com%3A443%2Fmcp%2F&scope=a%20b&resource=https%3A%2F%2Fother.example%2F&x=%FF")
        want = (b"grant_type=refresh_token&refresh_token=RT%2B1&client_id=c+1"
                b"&resource=https%3A%2F%2Fapi.example.com%2Fmcp&scope=a%20b&resource=https%3A%2F%2Fother.example%2F&x=%FF")
        untouched = [b"grant_type=refresh_token&refresh_token=RT_1",
                     b"grant_type=refresh_token&resource=https%3A%2F%2Fapi.example.com%2Fmcp%2F%zz",
                     b"resource=" + b"%E9" * 10]
        for net, name in ((control, "control"), (serve, "serve")):
            for body in [form, *untouched]:
                net.request("POST", "https://clerk.example.com/token",
                            {"Content-Type": "application/x-www-form-urlencoded"}, body)
        got_control = ctx.world.bodies.get("control", [])
        got_serve = ctx.world.bodies.get("serve", [])
        assert got_control == [form, *untouched], got_control
        assert got_serve == [want, *untouched], got_serve

    def issuer_reported() -> None:
        line = "issuer `https://clerk.example.com` is not `https://example.com`"
        log = ctx.envoy.wait_for_log(line)
        assert line in log, "warn line"
        assert ctx.envoy.counter("wasmcustom.mcp_oauth_guard.identity.issuer_fixed") > 0
        assert ctx.envoy.counter("wasmcustom.mcp_oauth_guard.identity.metadata_served") > 0
        assert ctx.envoy.counter("wasmcustom.mcp_oauth_guard.identity.resource_indicator_rewritten") > 0
        assert ctx.envoy.counter("wasmcustom.mcp_oauth_guard.identity.challenge_added") > 0
        assert ctx.envoy.counter("wasmcustom.mcp_oauth_guard.identity.metadata_corrected") > 0
        for secret in (r"RT%2B1", r"RT_1", r"\bcode-[0-9a-f]{16}", r"\bat-[0-9a-f]{16}", r"\brt-[0-9a-f]{16}"):
            assert not re.search(secret, log), f"log holds a secret ({secret})"

    def discovery_locations() -> None:
        # The issuer's RFC 8414 location, sent to the one path the server answers at.
        for url in ("https://clerk.example.com/.well-known/oauth-authorization-server",):
            r = serve.request("GET", url)
            assert r.status == 200 and r.json()["issuer"] == "https://clerk.example.com", (url, r.status)
            assert r.header("cache-control") == "public, max-age=600", r.headers
            c = control.request("GET", url)
            assert c.status == 404, f"control answers {url} (test can fail): {c.status}"

    composed = ctx.net(COMPOSED)

    def lifecycle_401_gets_challenge() -> None:
        # A bearer token issued before the registration epoch: the lifecycle answers 401
        # itself, and that answer too points at the resource metadata of the path used.
        claims = base64.urlsafe_b64encode(b'{"client_id":"c","iat":5}').rstrip(b"=").decode()
        r = composed.request("POST", "https://api.example.com/mcp/",
                             {**MCP_HEADERS, "Authorization": f"Bearer e30.{claims}.sig"}, INITIALIZE)
        value = r.header("www-authenticate") or ""
        assert r.status == 401 and 'error="invalid_token"' in value, (r.status, value)
        assert challenge_document(r) == "https://api.example.com/.well-known/oauth-protected-resource/mcp/", value

    def unwrap_and_resource_on_one_body() -> None:
        # The lifecycle unwraps the signed client_id and the resource value becomes
        # canonical, in the same token request body.
        r = composed.request("POST", "https://clerk.example.com/register",
                             {"Content-Type": "application/json"},
                             json.dumps({"redirect_uris": ["http://127.0.0.1:9/cb"]}).encode())
        assert r.status == 201, (r.status, r.body[:200])
        signed = r.json()["client_id"]
        ctx.world.bodies.clear()
        form = urlencode({"grant_type": "refresh_token", "refresh_token": "RT_2", "client_id": signed,
                          "resource": "https://api.example.com/mcp/"}).encode()
        composed.request("POST", "https://clerk.example.com/token",
                         {"Content-Type": "application/x-www-form-urlencoded"}, form)
        got = ctx.world.bodies.get(COMPOSED, [])
        assert len(got) == 1, got
        sent = parse_qs(got[0].decode())
        assert sent["resource"] == ["https://api.example.com/mcp"], sent
        assert sent["client_id"] != [signed] and sent["client_id"][0].startswith("client-"), sent
        assert got[0].startswith(b"grant_type=refresh_token&refresh_token=RT_2&client_id="), got[0]

    observe = ctx.net(OBSERVE)

    def observe_changes_nothing() -> None:
        strip = lambda h: sorted((k.lower(), v) for k, v in h if k.lower() not in ("date", "x-envoy-upstream-service-time"))  # noqa: E731
        for method, url, headers, body in [
            ("GET", "https://api.example.com/.well-known/oauth-protected-resource/mcp", {}, None),
            ("GET", "https://clerk.example.com/.well-known/oauth-authorization-server", {}, None),
            ("POST", "https://api.example.com/mcp", MCP_HEADERS, INITIALIZE),
            ("GET", "https://clerk.example.com/authorize?client_id=c&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb"
                    "&resource=https%3A%2F%2Fapi.example.com%2Fmcp%2F", {}, None),
        ]:
            a, b = observe.request(method, url, headers, body), control.request(method, url, headers, body)
            assert (a.status, strip(a.headers), a.body) == (b.status, strip(b.headers), b.body), (method, url, a.status, b.status)
        ctx.world.bodies.clear()
        form = b"grant_type=refresh_token&refresh_token=RT_9&resource=https%3A%2F%2Fapi.example.com%2Fmcp%2F"
        observe.request("POST", "https://clerk.example.com/token",
                        {"Content-Type": "application/x-www-form-urlencoded"}, form)
        assert ctx.world.bodies.get(OBSERVE) == [form], ctx.world.bodies.get(OBSERVE)
        log = ctx.envoy.wait_for_log("observe: would rewrite 1 resource parameter(s) of a token request")
        for line in ("observe: would serve resource metadata", "observe: would change :path",
                     "observe: would add resource_metadata", "observe: would rewrite 1 resource parameter(s)"):
            assert line in log, f"no log line {line!r}"

    check("mode: observe: same answers and bodies as without the filter, decisions logged", observe_changes_nothing)
    check("with the lifecycle: its own 401 at the MCP endpoint gets the challenge", lifecycle_401_gets_challenge)
    check("with the lifecycle: client_id unwrap and resource rewrite on one token body", unwrap_and_resource_on_one_body)
    check("Cache-Control on served and corrected documents", cache_control)
    check("RFC 8414 discovery location answers from the one upstream path", discovery_locations)
    check("HEAD answered without body; other methods pass through", head_and_methods)
    check("401 gets challenge + CORS expose; OPTIONS preflight untouched", cors_and_options)
    check("Bearer challenge keeps its error parameters", bearer_error_kept)
    check("token body: only resource values change, malformed kept", body_bytes)
    check("issuer mismatch logged and counted; no secrets in the log", issuer_reported)
    return out


# --------------------------------------------------------------------------------------
# Refusals at load: Envoy itself refuses a broken resources section, naming the field.

REFUSALS = [
    ("https://api.example.com/mcp/, https://api.example.com]",
     "https://other.example.com/mcp, https://api.example.com]",
     "policy refused: field `resources[0].aliases[0]`: `https://other.example.com/mcp` is on another origin"),
    ("authorization_servers: [https://clerk.example.com]\n    metadata: {mode: serve, scopes_supported: [mcp]}",
     "authorization_servers: [https://clerk.example.com]\n    metadata: {mode: correct, scopes_supported: [mcp]}",
     "policy refused: field `resources[0].metadata.scopes_supported`: is used with `mode: serve` only"),
    ("resource: https://bare.example.com/mcp",
     "resource: https://bare.example.com/mcp#frag",
     "policy refused: field `resources[1].resource`: `https://bare.example.com/mcp#frag` contains a fragment"),
]


def refused_with(text: str, want: str) -> bool:
    """`want` is "policy refused: field `F`: message"; Envoy's line may add " (line N)"."""
    head, _, message = want.partition("`: ")
    pattern = re.escape(head + "`") + r"(?: \(line \d+\))?: " + re.escape(message)
    return re.search(pattern, text) is not None


def refusal_checks(tmp: Path) -> list[tuple[str, str | None]]:
    out = []
    # The shipped example config (with policies/url-identity.yaml) is accepted as it is.
    shipped = (ROOT / "envoy" / "url-identity.yaml").read_text()
    path = tmp / "shipped.yaml"
    path.write_text(shipped.replace("/etc/envoy/mcp_oauth_guard.wasm", str(WASM)))
    proc = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
                          capture_output=True, text=True, timeout=120)
    policy_text = (ROOT / "policies" / "url-identity.yaml").read_text()
    body = [ln.strip() for ln in policy_text.splitlines() if ln.strip() and not ln.startswith("#")]
    embedded = all(ln in shipped for ln in body)
    out.append(("shipped envoy/url-identity.yaml validates and embeds policies/url-identity.yaml",
                None if proc.returncode == 0 and embedded else
                f"rc={proc.returncode} embedded={embedded} {(proc.stdout + proc.stderr)[-300:]}"))
    for i, (old, new, want) in enumerate(REFUSALS):
        assert old in POLICY_SERVE, old
        config = envoy_config(9)  # never started: validate mode only
        config["static_resources"]["listeners"] = [listener("bad", POLICY_SERVE.replace(old, new))]
        path = tmp / f"refusal-{i}.json"
        path.write_text(json.dumps(config))
        proc = subprocess.run(
            [str(ENVOY), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id",
             "-l", "info"], capture_output=True, text=True, timeout=120,
        )
        text = proc.stdout + proc.stderr
        if proc.returncode == 0:
            out.append((f"Envoy refuses: {want}", "Envoy accepted the broken policy"))
        elif not refused_with(text, want):
            lines = [ln for ln in text.splitlines() if "refused" in ln or "error" in ln][-3:]
            out.append((f"Envoy refuses: {want}", f"message not found; got {lines}"))
        else:
            out.append((f"Envoy refuses: {want}", None))
    return out


# --------------------------------------------------------------------------------------
# The run.


def run(args: argparse.Namespace) -> int:
    for path, what in ((ENVOY, "Envoy (scripts/bootstrap.sh)"), (WASM, "the filter (cargo build)")):
        if not path.exists():
            print(f"error: {path} not found: {what}", file=sys.stderr)
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="mcp-oauth-guard-url-identity-"))
    passed = failed = 0
    with ExitStack() as stack:
        if args.keep:
            stack.callback(print, f"kept {tmp}", file=sys.stderr)
        else:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        world = World()
        stack.callback(world.server_close)
        envoy = start_envoy(world.port, tmp, stack)  # forked before any thread starts
        threading.Thread(target=world.serve_forever, daemon=True).start()
        stack.callback(world.shutdown)
        ctx = Ctx(envoy, world, args.verbose)

        for title, fn, filtered in CASES:
            for listener in LISTENERS:
                trace = Trace()
                try:
                    fn(ctx, listener, trace)
                    outcome, why = "pass", ""
                except Failed as exc:
                    outcome, why = "fail", str(exc)
                except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                    outcome, why = "fail", f"{type(exc).__name__}: {exc}"
                if listener == "control":
                    good = outcome == "fail"
                    expect = "fails without the filter"
                elif listener in filtered:
                    good = outcome == "pass"
                    expect = "passes"
                else:
                    print(f"SKIP {title} [{listener}]: not configured in this mode")
                    continue
                mark = "PASS" if good else "FAIL"
                passed, failed = passed + good, failed + (not good)
                print(f"{mark} {title} [{listener}] {expect}" + (f": {why}" if why else ""))
                if args.verbose or not good:
                    for step in trace.steps:
                        print(f"      {step}")

        for name, problem in checks(ctx) + refusal_checks(tmp):
            good = problem is None
            passed, failed = passed + good, failed + (not good)
            print(f"{'PASS' if good else 'FAIL'} {name}" + (f": {problem}" if problem else ""))

        # Every spelling a user might type: one full SDK-style session per listener.
        rows = []
        for url in SPELLINGS:
            row = {"url": url}
            for listener in LISTENERS:
                trace = Trace()
                ctx.world.take_seen(listener)
                try:
                    sdk_session(ctx.net(listener), url, trace, refresh_slash=False)
                    row[listener] = ("ok", trace)
                except (Failed, OSError, ValueError, KeyError) as exc:
                    row[listener] = (f"fails: {exc}", trace)
                row[listener + "_seen"] = sorted({str(r) for _, r in ctx.world.take_seen(listener)})
            for listener in ("serve", "correct"):
                outcome, trace = row[listener]
                good = outcome == "ok" and row[listener + "_seen"] == ["https://api.example.com/mcp"]
                passed, failed = passed + good, failed + (not good)
                print(f"{'PASS' if good else 'FAIL'} SDK-style session from {url} [{listener}]: "
                      f"{outcome}; AS saw {row[listener + '_seen']}")
                if not good or args.verbose:
                    for step in trace.steps:
                        print(f"      {step}")
            rows.append(row)
        if args.table:
            print_table(rows)

        # The official TypeScript SDK client, from every spelling, on every listener.
        sdk_rows = sdk_sessions(ctx)
        for url, listener, result, seen in sdk_rows:
            grants = {where for where, _ in seen}
            resources = sorted({str(r) for _, r in seen})
            if listener == "control":
                # Without the filter the AS refuses the origin-form `resource` the SDK read
                # from the upstream's root document (field cases 8 and 9).
                good = not result.get("ok") and "invalid_target" in str(result.get("error"))
                expect = "fails without the filter"
            else:
                good = (result.get("ok") is True and resources == ["https://api.example.com/mcp"]
                        and {"authorize", "authorization_code", "refresh_token"} <= grants)
                expect = "completes"
            passed, failed = passed + good, failed + (not good)
            detail = result.get("error") or f"resource {result.get('resource')}; AS saw {resources} at {sorted(grants)}"
            print(f"{'PASS' if good else 'FAIL'} TypeScript SDK session from {url} [{listener}] {expect}: {detail}")

        problems = [ln for ln in envoy.log().splitlines() if re.search(r"\]\[(critical)\]|panic", ln)]
        for ln in problems[:10]:
            print(f"note: envoy log: {ln}", file=sys.stderr)
        if problems:
            failed += 1
            print("FAIL Envoy log has critical lines or a panic")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


SDK_DIR = Path(__file__).resolve().parent
SDK_SCRIPT = SDK_DIR / "sdk-session.mjs"


def sdk_sessions(ctx: Ctx) -> list[tuple[str, str, dict, list]]:
    """(url, listener, node's JSON line, what the AS saw) per spelling and listener."""
    if not (SDK_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir() or not shutil.which("node"):
        print("SKIP TypeScript SDK sessions: run `npm ci` in tests/url-identity (scripts/bootstrap.sh does)")
        return []
    out = []
    for url in SPELLINGS:
        for listener in LISTENERS:
            ctx.world.take_seen(listener)
            try:
                proc = subprocess.run(["node", str(SDK_SCRIPT), str(ctx.envoy.ports[listener]), url],
                                      capture_output=True, text=True, timeout=60, cwd=SDK_DIR)
                line = (proc.stdout.strip().splitlines() or ["{}"])[-1]
                result = json.loads(line)
                if not result and proc.stderr:
                    result = {"ok": False, "error": proc.stderr.strip()[-300:]}
            except (subprocess.TimeoutExpired, ValueError, OSError) as exc:
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            out.append((url, listener, result, ctx.world.take_seen(listener)))
    return out


def print_table(rows: list[dict]) -> None:
    def short(url: str) -> str:
        path = re.sub(r"^https?://[^/]+", "", url)
        return path.replace("/.well-known/oauth-protected-resource", "PRM") or "/"
    print("\n| URL typed | listener | documents found | `resource` used | AS saw | session |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        for listener in LISTENERS:
            outcome, trace = row[listener]
            docs = ", ".join(short(d) for d in trace.documents if "protected-resource" in d) or "none"
            print(f"| `{row['url']}` | {listener} | {docs} | {trace.resource or '-'} | "
                  f"{', '.join(row[listener + '_seen']) or '-'} | {outcome} |")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tests/url-identity/run.sh", description=__doc__.split("\n")[0])
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (envoy.json, envoy.log)")
    p.add_argument("--table", action="store_true", help="print the README table of URL spellings")
    args = p.parse_args(argv)

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    try:
        return run(args)
    except KeyboardInterrupt as exc:
        print(f"interrupted by {exc}; Envoy and the upstream are stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
