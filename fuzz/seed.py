#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ from the provider fixtures and the example
policies, in the input layouts of fuzz/src/lib.rs. Run it again when fixtures change; the
output is deterministic. Seeds stay small: one file per fixture and a few hand-made edges.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
FIXTURES = ROOT / "tests" / "fixtures" / "providers"

# Fixture endpoint -> (method, path) of the same kind in the fuzz policy (fuzz/src/lib.rs).
ROOT_PATHS = {
    "token": ("POST", "/token"),
    "revoke": ("POST", "/revoke"),
    "register": ("GET", "/register"),
    "authorize": ("GET", "/authorize"),
    "introspect": ("POST", "/introspect"),
}
# Paths the fuzz policy knows besides the root ones (Keycloak and GitHub presets).
KNOWN_PREFIXES = ("/realms/", "/login/oauth/")


def write(target: str, name: str, data: bytes) -> None:
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


def gz(data: bytes) -> bytes:
    # mtime=0: the same bytes on every run.
    return gzip.compress(data, mtime=0)


def body_input(method: str, path: str, auth: str, status: int, ctype: str, coding: str,
               length: str, body: bytes) -> bytes:
    head = "\n".join([f"{method} {path}", auth, str(status), ctype, coding, length])
    return head.encode() + b"\n" + body


def main() -> int:
    if CORPUS.exists():
        shutil.rmtree(CORPUS)

    for fixture in sorted(FIXTURES.glob("*.json")):
        fx = json.loads(fixture.read_text())
        req, resp = fx["request"], fx["response"]
        name = fixture.stem
        path = req["path"]
        path_only, _, query = path.partition("?")
        if not path_only.startswith(KNOWN_PREFIXES):
            method, root_path = ROOT_PATHS.get(fx["endpoint"], (req["method"], path_only))
            path = root_path + (f"?{query}" if query else "")
        else:
            method = req["method"]
        headers = {k.lower(): v for k, v in resp["headers"].items()}
        ctype = headers.get("content-type", "")
        status = resp["status"] or (200 if "html" in ctype else 400)
        body = (resp.get("body") or "").encode()
        auth = req["headers"].get("authorization", "")

        write("body_classify", name,
              body_input(method, path, auth, status, ctype, "", str(len(body)), body))
        write("body_decode", name, body)
        write("path_routing", name, f"{req['method']}\n{req['path']}\n{auth}".encode())
        if fx["endpoint"] == "authorize":
            location = headers.get("location", "")
            write("authorize_redirect", name, f"{query}\n{location}\n{status}".encode())

    # Hand-made edges of the response targets.
    gone = b'{"error":"invalid_client","error_description":"Client not found"}'
    write("body_classify", "gzip_invalid_client",
          body_input("POST", "/token", "Basic eDp5", 400, "application/json", "gzip", "", gz(gone)))
    write("body_classify", "deflate_invalid_client",
          body_input("POST", "/token", "", 401, "", "deflate", "", zlib.compress(gone)))
    write("body_classify", "gzip_bomb",
          body_input("POST", "/token", "", 400, "application/json", "gzip", "",
                     gz(b"{\"error\":\"invalid_client\",\"p\":\"" + b"a" * 100_000 + b"\"}")))
    write("body_classify", "server_error",
          body_input("POST", "/token", "", 503, "application/json", "", "", gone))
    write("body_classify", "over_cap",
          body_input("POST", "/revoke", "", 400, "application/json", "", "4096", gone))
    write("body_classify", "error_in_success_form",
          body_input("POST", "/login/oauth/access_token", "", 200, "text/plain", "", "",
                     b"error=incorrect_client_credentials&error_description=The+client_id"))
    write("body_classify", "custom_rule",
          body_input("POST", "/login/oauth/access_token", "", 404, "application/json", "", "",
                     b'{"error":"app_missing","msg":"No such app"}'))
    write("body_classify", "latin1",
          body_input("POST", "/token", "DPoP x", 400, "application/json; charset=ISO-8859-1",
                     "", "", b'{"error":"invalid_client","msg":"Cl\xe9"}'))
    write("body_decode", "gzip_fname",
          b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\x03e.json\x00" + gz(gone)[10:])
    write("body_decode", "zlib", zlib.compress(gone))
    write("body_decode", "nested", b'{"error":{"code":"client_not_found","message":"x"}}')

    for line in ["POST\n/token?x=1\nBasic eDp5", "POST\n//token\n", "POST\n/token;p\n",
                 "POST\n/realms/../protocol/openid-connect/token\n",
                 "POST\n/realms/a%2Fb/protocol/openid-connect/token\nBearer a.b.c",
                 "OPTIONS\n/register\n", "POST\n/realms/x/protocol/openid-connect/token\n"]:
        write("path_routing", f"edge_{zlib.crc32(line.encode()):08x}", line.encode())

    cb = "redirect_uri=http%3A%2F%2Fx%2Fcb&client_id=c"
    for i, (location, status) in enumerate([
        ("http://x/cb?error=invalid_client&state=s", 302),
        ("http://x/cb#error=unauthorized_client&error_description=Client+not+found", 303),
        ("http://x/cbevil?error=invalid_client", 302),
        ("http://x/cb?code=abc", 302),
    ]):
        write("authorize_redirect", f"edge_{i}", f"{cb}\n{location}\n{status}".encode())

    # URL identity (issue 6): spellings, form bodies, challenges, documents, requests.
    for i, seed in enumerate([
        b"https://API.example.com:443/mcp/",
        b"https://api.example.com/%6Dcp?x=%2f",
        b"https://u@h/#f",
        b"grant_type=refresh_token&resource=https%3A%2F%2Fapi.example.com%2Fmcp%2F&x=%FF",
        b"resource=https://api.example.com&resource=https%3A%2F%2Fother.example.com%2Fmcp&&=",
        b'Bearer realm="mcp", error="invalid_token", error_description="a, \\" b"',
        b'Basic realm="x", Negotiate abc/def==',
        b'{"resource":"https://api.example.com/","authorization_servers":["https://example.com"]}',
        b'{"issuer":"https://clerk.example.com","token_endpoint":"https://clerk.example.com/t"}',
        b"GET\n/.well-known/oauth-protected-resource/mcp/\napi.example.com",
        b"GET\n/.well-known/oauth-authorization-server/t\nauth.example.com:443",
        b"GET\n/authorize?resource=https%3A%2F%2Fapi.example.com&client_id=c\nAPI.example.com",
        b"POST\n/mcp\nother.example.com",
    ]):
        write("url_identity", f"seed_{i:02}", seed)

    for policy in sorted((ROOT / "policies").glob("*")):
        write("policy_load", policy.name, policy.read_bytes())
    fuzz_policy = (ROOT / "fuzz" / "src" / "lib.rs").read_text()
    start = fuzz_policy.index('"\\\nversion: 1') + 3
    write("policy_load", "fuzz_policy.yaml",
          fuzz_policy[start:fuzz_policy.index('";', start)].encode())
    write("policy_load", "json.json",
          b'{"version":1,"providers":[{"name":"op","preset":"okta",'
          b'"endpoints":{"token":["/oauth2/*/v1/token"]}}],"limits":{"max_body_bytes":1024}}')
    write("policy_load", "rules.yaml", b"""version: 1
providers:
  - name: a
    preset: entra
    client_gone:
      - {status: [400, 401], error: [x_gone], description_contains: [no such client]}
rewrite: {error_description: gone, realm: r}
authorization: {stale_client_page: false}
""")
    write("policy_load", "refused_anchor.yaml", b"a: &a [x]\nb: *a\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
