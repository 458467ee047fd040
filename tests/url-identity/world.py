"""The upstream world of the URL-identity end-to-end test: one Python server on 127.0.0.1
that plays several hosts, chosen by the Host header, each misbehaving like a BRIEF field case.

- api.example.com: an MCP server at /mcp, /mcp/ and / answering 401 with no challenge (or
  `Bearer error="invalid_token"` for a bad token) and serving resource metadata only at the
  root, naming the origin and the AS by its custom domain `https://example.com` (cases 8, 11,
  12).
- bare.example.com: an MCP server with no resource metadata at all and authorization server
  metadata at its origin whose issuer is another host (case 10).
- pathonly.example.com: resource metadata only at the path-inserted location (case 11).
- example.com / clerk.example.com: one authorization server reached by two names, serving
  OpenID metadata at one location only, issuer `https://clerk.example.com` (case 12). Its
  /authorize and /token compare RFC 8707 `resource` values as strings (case 9).

Everything a request carries that matters to the test is recorded per Envoy listener (the
`x-listener` header Envoy adds): resource values at /authorize and /token, and raw token
request bodies (so byte-for-byte preservation can be checked).
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit

ISSUER = "https://clerk.example.com"
# The only resource identifiers the authorization server accepts (it compares strings).
KNOWN_RESOURCES = {
    "https://api.example.com/mcp",
    "https://bare.example.com/mcp",
    "https://pathonly.example.com/mcp",
}
MCP_PATHS = {"/mcp", "/mcp/", "/"}

AS_DOC = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "registration_endpoint": f"{ISSUER}/register",
    "response_types_supported": ["code"],
    "grant_types_supported": ["authorization_code", "refresh_token"],
    "code_challenge_methods_supported": ["S256"],
    "token_endpoint_auth_methods_supported": ["none"],
    # Required by OpenID Connect Discovery 1.0 (and by the SDK's schema for this location).
    "jwks_uri": f"{ISSUER}/jwks",
    "subject_types_supported": ["public"],
    "id_token_signing_alg_values_supported": ["RS256"],
}


class World(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.codes: dict[str, str] = {}  # code -> resource
        self.refresh: dict[str, str] = {}  # refresh token -> resource
        self.access: dict[str, str] = {}  # access token -> resource
        self.seen: dict[str, list[tuple[str, str | None]]] = {}  # listener -> (where, resource)
        self.bodies: dict[str, list[bytes]] = {}  # listener -> raw token request bodies

    @property
    def port(self) -> int:
        return self.server_address[1]

    def record(self, listener: str, where: str, resource: str | None) -> None:
        with self.lock:
            self.seen.setdefault(listener, []).append((where, resource))

    def take_seen(self, listener: str) -> list[tuple[str, str | None]]:
        with self.lock:
            return self.seen.pop(listener, [])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: World

    def log_message(self, fmt: str, *args) -> None:  # quiet
        pass

    # -- plumbing -------------------------------------------------------------------------

    def body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] = ()) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def json(self, status: int, doc: dict, headers: list[tuple[str, str]] = ()) -> None:
        self.send(status, json.dumps(doc).encode(), [("Content-Type", "application/json"), *headers])

    def do_GET(self) -> None:
        self.route()

    def do_HEAD(self) -> None:
        self.route()

    def do_POST(self) -> None:
        self.route()

    def do_OPTIONS(self) -> None:
        self.route()

    # -- the hosts ------------------------------------------------------------------------

    def route(self) -> None:
        host = (self.headers.get("host") or "").split(":")[0].lower()
        url = urlsplit(self.path)
        listener = self.headers.get("x-listener") or "?"
        body = self.body()
        self.request_body = body
        if host in ("example.com", "clerk.example.com"):
            return self.authorization_server(url, listener, body)
        if host == "api.example.com":
            return self.mcp_server(host, url.path, [("/.well-known/oauth-protected-resource", {
                "resource": "https://api.example.com/",
                "authorization_servers": ["https://example.com"],
                "scopes_supported": ["mcp"],
            })])
        if host == "bare.example.com":
            if url.path == "/.well-known/oauth-authorization-server":
                return self.json(200, AS_DOC)
            return self.mcp_server(host, url.path, [])
        if host == "pathonly.example.com":
            return self.mcp_server(host, url.path, [("/.well-known/oauth-protected-resource/mcp", {
                "resource": "https://pathonly.example.com/mcp",
                "authorization_servers": [ISSUER],
            })])
        self.send(404, b"unknown host\n", [("Content-Type", "text/plain")])

    def mcp_server(self, host: str, path: str, documents: list[tuple[str, dict]]) -> None:
        for location, doc in documents:
            if path == location and self.command in ("GET", "HEAD"):
                return self.json(200, doc)
        if path not in MCP_PATHS:
            return self.send(404, b"not found\n", [("Content-Type", "text/plain")])
        if self.command == "OPTIONS":
            return self.send(204, b"", [
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Methods", "GET, POST, DELETE"),
                ("Access-Control-Allow-Headers", "authorization, content-type, mcp-protocol-version"),
            ])
        auth = self.headers.get("authorization") or ""
        if auth.startswith("Bearer "):
            with self.server.lock:
                audience = self.server.access.get(auth[len("Bearer "):])
            if audience == f"https://{host}/mcp":
                return self.json_rpc()
            return self.json(401, {"error": "invalid_token"}, [
                ("WWW-Authenticate", 'Bearer realm="mcp", error="invalid_token"'),
            ])
        # No challenge at all: the server forgot it (case 10).
        self.json(401, {"error": "unauthorized"})

    def json_rpc(self) -> None:
        """Just enough of an MCP server for the SDK client: initialize and tools/list."""
        if self.command != "POST":
            return self.send(405, b"", [("Allow", "POST")])
        try:
            message = json.loads(self.request_body or b"{}")
        except ValueError:
            return self.json(400, {"error": "bad json"})
        if not isinstance(message, dict) or "id" not in message:
            return self.send(202)
        method = message.get("method")
        if method == "initialize":
            params = message.get("params") or {}
            result = {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                      "capabilities": {"tools": {}},
                      "serverInfo": {"name": "url-identity-world", "version": "0"}}
        elif method == "tools/list":
            result = {"tools": []}
        else:
            result = {}
        self.json(200, {"jsonrpc": "2.0", "id": message["id"], "result": result})

    def authorization_server(self, url, listener: str, body: bytes) -> None:
        if url.path == "/.well-known/openid-configuration" and self.command in ("GET", "HEAD"):
            return self.json(200, AS_DOC)
        if url.path == "/authorize" and self.command == "GET":
            q = parse_qs(url.query, keep_blank_values=True)
            resource = (q.get("resource") or [None])[0]
            self.server.record(listener, "authorize", resource)
            if resource not in KNOWN_RESOURCES:
                return self.json(400, {"error": "invalid_target"})
            code = "code-" + secrets.token_hex(8)
            with self.server.lock:
                self.server.codes[code] = resource
            redirect = (q.get("redirect_uri") or ["http://127.0.0.1/cb"])[0]
            state = (q.get("state") or [""])[0]
            return self.send(302, b"", [("Location", f"{redirect}?{urlencode({'code': code, 'state': state})}")])
        if url.path == "/register" and self.command == "POST":
            try:
                meta = json.loads(body or b"{}")
            except ValueError:
                meta = {}
            return self.json(201, {**(meta if isinstance(meta, dict) else {}),
                                   "client_id": "client-" + secrets.token_hex(4),
                                   "client_id_issued_at": int(time.time()),
                                   "token_endpoint_auth_method": "none"})
        if url.path == "/token" and self.command == "POST":
            with self.server.lock:
                self.server.bodies.setdefault(listener, []).append(body)
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            grant = (form.get("grant_type") or [""])[0]
            resource = (form.get("resource") or [None])[0]
            self.server.record(listener, grant or "token", resource)
            with self.server.lock:
                if grant == "authorization_code":
                    bound = self.server.codes.pop((form.get("code") or [""])[0], None)
                elif grant == "refresh_token":
                    bound = self.server.refresh.get((form.get("refresh_token") or [""])[0])
                else:
                    bound = None
                if bound is None:
                    return self.json(400, {"error": "invalid_grant"})
                # RFC 8707 section 2.2: the same resource as was authorized, as a string.
                if resource is not None and resource != bound:
                    return self.json(400, {"error": "invalid_target"})
                access, refresh = "at-" + secrets.token_hex(8), "rt-" + secrets.token_hex(8)
                self.server.access[access] = bound
                self.server.refresh[refresh] = bound
            return self.json(200, {
                "access_token": access, "token_type": "Bearer", "expires_in": 60,
                "refresh_token": refresh,
            }, [("Cache-Control", "no-store")])
        self.send(404, b"not found\n", [("Content-Type", "text/plain")])
