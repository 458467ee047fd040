"""A small OAuth 2.1 authorization server that forgets clients, for the demo.

It registers clients (RFC 7591), authorizes them without a login page, issues and refreshes
tokens, and can be told to forget a client or revoke a refresh token. When it no longer knows
a client it answers in the words of a real provider (--shape), not with the standard
401 invalid_client, exactly as the providers in shared/fixtures do.

Listens on 127.0.0.1 only. Stdlib only.
"""

import argparse
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

# What real providers answer for a client they do not know (see shared/fixtures/providers).
SHAPES = {
    "clerk": (400, "application/json", json.dumps({
        "error": "invalid_request",
        "error_description": "Client authentication failed (e.g., unknown client, no client "
        "authentication included, or unsupported client authentication method). "
        "The requested OAuth 2.0 Client does not exist.",
    })),
    "okta": (400, "application/json", json.dumps({
        "errorCode": "invalid_client",
        "errorSummary": "Invalid value for 'client_id' parameter.",
        "errorLink": "invalid_client", "errorId": "oaeDEMO", "errorCauses": [],
    })),
    "entra": (400, "application/json; charset=utf-8", json.dumps({
        "error": "unauthorized_client",
        "error_description": "AADSTS700016: Application with identifier 'DEMO' was not found "
        "in the directory 'DEMO'.",
    })),
    "github": (200, "application/x-www-form-urlencoded; charset=utf-8", urlencode({
        "error": "incorrect_client_credentials",
        "error_description": "The client_id and/or client_secret passed are incorrect.",
    })),
}

# Supabase's envelope for a refresh token it no longer has: a bad grant, not a bad client.
REVOKED = (400, "application/json", json.dumps({
    "code": 400, "error_code": "refresh_token_not_found",
    "msg": "Invalid Refresh Token: Refresh Token Not Found",
}))


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.clients = {}
        self.codes = {}
        self.refresh = {}
        self.shape = "clerk"
        # Requests seen per path, and client_ids the token endpoint was asked about.
        self.seen = {}
        self.token_client_ids = []
        # When set, /register hands back a registration issued this many seconds ago
        # (a provider that deduplicates registrations).
        self.dedup_age = None


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, ctype, body, extra=()):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("cache-control", "no-store")
            for k, v in extra:
                self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def json(self, status, obj):
            self.reply(status, "application/json", json.dumps(obj))

        def body(self):
            n = int(self.headers.get("content-length") or 0)
            return self.rfile.read(n) if n else b""

        def form(self):
            return {k: v[0] for k, v in parse_qs(self.body().decode()).items()}

        def do_GET(self):
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/authorize":
                client = state.clients.get(q.get("client_id"))
                if not client:
                    return self.reply(400, "text/html", "<h1>Unknown client</h1>")
                code = secrets.token_urlsafe(16)
                with state.lock:
                    state.codes[code] = q["client_id"]
                loc = q.get("redirect_uri", "") + "?" + urlencode({"code": code, "state": q.get("state", "")})
                return self.reply(302, "text/plain", "", [("location", loc)])
            if url.path == "/mcp":
                return self.reply(401, "application/json", '{"error":"invalid_token"}',
                                  [("www-authenticate", 'Bearer error="invalid_token"')])
            self.json(404, {"error": "not_found"})

        def do_POST(self):
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            with state.lock:
                state.seen[url.path] = state.seen.get(url.path, 0) + 1
            if url.path == "/mcp":
                if self.headers.get("authorization", "").lower().startswith("bearer "):
                    return self.json(200, {"jsonrpc": "2.0", "id": 1, "result": {}})
                return self.reply(401, "application/json", '{"error":"invalid_token"}',
                                  [("www-authenticate", 'Bearer error="invalid_token"')])
            if url.path == "/register":
                meta = json.loads(self.body() or b"{}")
                cid = "client-" + secrets.token_hex(8)
                issued = int(time.time()) - (state.dedup_age or 0)
                with state.lock:
                    state.clients[cid] = meta
                return self.json(201, dict(meta, client_id=cid, client_id_issued_at=issued,
                                           token_endpoint_auth_method="none"))
            if url.path == "/token":
                f = self.form()
                cid = f.get("client_id")
                with state.lock:
                    state.token_client_ids.append(cid)
                if cid not in state.clients:
                    return self.reply(*SHAPES[state.shape])
                if f.get("grant_type") == "authorization_code":
                    if state.codes.pop(f.get("code"), None) != cid:
                        return self.json(400, {"error": "invalid_grant"})
                elif f.get("grant_type") == "refresh_token":
                    if state.refresh.pop(f.get("refresh_token"), None) != cid:
                        return self.reply(*REVOKED)
                else:
                    return self.json(400, {"error": "unsupported_grant_type"})
                rt = secrets.token_urlsafe(24)
                with state.lock:
                    state.refresh[rt] = cid
                return self.json(200, {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                                       "expires_in": 60, "refresh_token": rt})
            if url.path == "/admin/shape" and q.get("name") in SHAPES:
                state.shape = q["name"]
                return self.json(200, {"shape": state.shape})
            if url.path == "/admin/dedup":
                state.dedup_age = int(q["age"]) if q.get("age") else None
                return self.json(200, {"dedup_age": state.dedup_age})
            if url.path == "/admin/seen":
                with state.lock:
                    return self.json(200, {"paths": state.seen, "token_client_ids": state.token_client_ids})
            if url.path == "/admin/forget":
                with state.lock:
                    state.clients.pop(q.get("client_id"), None)
                return self.json(200, {"forgotten": True})
            if url.path == "/admin/revoke":
                with state.lock:
                    state.refresh.pop(q.get("refresh_token"), None)
                return self.json(200, {"revoked": True})
            self.json(404, {"error": "not_found"})

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="clerk")
    args = ap.parse_args()
    state = State()
    state.shape = args.shape
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    print(f"forgetful provider on {args.host}:{server.server_address[1]} ({args.shape})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
