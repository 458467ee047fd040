"""Generated exchanges for the differential test, each with what the filter must do to it.

The oracle is deliberately simple: a case is built *as* one semantic class (a body that says the
client is gone, a provider-shaped bad grant, a 2xx token error, or something neutral), and its
expectation follows from README.md "How it decides" and the policy below: on /token, /revoke and
/authorize, a body of a rewrite-worthy class that the filter can read (status 2xx/4xx, JSON/form
or untyped, identity/gzip/deflate, at most the cap, complete and decodable, not HEAD/204/304) is
rewritten; everything else is byte-identical. /register is never rewritten (no lifecycle in the
policy).
"""

from __future__ import annotations

import gzip
import json
import random
import zlib
from dataclasses import dataclass, field

from wire import Answer

CAP = 16384  # limits.max_body_bytes default (filter/src/policy/document.rs)

POLICY = """version: 1
providers:
  - name: oauth
    preset: auto
    endpoints:
      token: [/token]
      revocation: [/revoke]
      registration: [/register]
      authorization: [/authorize]
"""

INVALID_CLIENT_DESCRIPTION = (
    "Client authentication failed: the client is unknown to the authorization server "
    "(deleted, expired or never registered). Register the client again."
)
INVALID_GRANT_DESCRIPTION = "The refresh token or authorization code is invalid, expired or revoked."
STALE_PAGE = (
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<title>Sign-in needs a new registration</title></head><body>"
    "<h1>This application's registration has expired</h1>"
    "<p>The authorization server no longer knows the client that sent you here, "
    "so it cannot sign you in.</p>"
    "<p>Close this window and connect again from your application: it will register itself "
    "anew. If it keeps sending you here, remove the server from the application and add it again.</p>"
    "</body></html>\n"
).encode()

# filter/src/reply.rs REPLACED_HEADERS: removed from the upstream answer on a rewrite.
REPLACED_HEADERS = frozenset("""content-length content-type content-encoding transfer-encoding
content-md5 content-range content-disposition content-language content-security-policy etag
last-modified expires location refresh cache-control pragma www-authenticate""".split())

REDIRECT_URI = "http://127.0.0.1:9/cb"  # a string in a header; nothing ever connects to it
AUTHORIZE_QUERY = "?response_type=code&client_id=c1&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=s"

TARGETS = {"/token": "token", "/revoke": "revocation", "/authorize": "authorization",
           "/register": "registration"}
NON_TARGETS = ["/mcp", "/other", "/.well-known/oauth-authorization-server", "/token/", "//token",
               "/Token", "/revoke/x", "/mcp/token"]


@dataclass
class Case:
    id: int
    label: str  # semantic class and variant, for the report
    method: str
    path: str
    req_headers: list[tuple[str, str]]
    req_body: bytes
    answer: Answer
    expect: str  # identical | invalid_client | invalid_grant | error_in_success | stale_page
    proto: str = "h1"  # h1 | h2
    chunked_request: bool = False
    # For error_in_success: the body the filter must send.
    expect_body: bytes = b""
    notes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str | None:
        return TARGETS.get(self.path.split("?", 1)[0])


# ---------------------------------------------------------------------------------------------
# Bodies by semantic class


GONE_JSON = [
    {"error": "invalid_request", "error_description": "Client authentication failed (e.g., unknown "
     "client, no client authentication included, or unsupported authentication method). The "
     "requested OAuth 2.0 Client does not exist."},
    {"error": "invalid_client", "error_description": "Client authentication failed."},
    {"errorCode": "invalid_client", "errorSummary": "Invalid value for 'client_id' parameter.",
     "errorId": "oaeXYZ"},
    {"error": {"code": "client_not_found", "message": "no such client"}},
    {"error": "unauthorized_client", "error_description": "AADSTS700016: Application with "
     "identifier 'c1' was not found in the directory 'x'."},
    {"errors": [{"code": "oauth2_client_not_found", "message": "gone"}]},
    {"status_code": 404, "error_type": "oauth2_client_not_found", "error_message": "x"},
]
GONE_FORM = [b"error=invalid_client&error_description=Client+not+found",
             b"error=invalid_client"]
BAD_GRANT = [  # provider-shaped bad grants: /token rewrites them to a standard invalid_grant
    {"code": 400, "error_code": "refresh_token_not_found",
     "msg": "Invalid Refresh Token: Refresh Token Not Found"},
]
ERROR_IN_SUCCESS = [  # 2xx token answers with an error and no access_token
    ({"error": "slow_down", "error_description": "Wait a little"},
     {"error": "slow_down", "error_description": "Wait a little"}),
    ({"error": "authorization_pending"}, {"error": "authorization_pending"}),
]
NEUTRAL_4XX = [  # errors the filter must leave alone
    {"error": "invalid_grant", "error_description": "The refresh token is invalid, expired or revoked."},
    {"error": "invalid_scope", "error_description": "The requested scope is invalid."},
    {"error": "unsupported_grant_type"},
    {"error": "invalid_request", "error_description": "Missing parameter: code_verifier"},
    {"message": "rate limited"},
    {"error": "access_denied", "error_description": "The user denied the request"},
]


def jdump(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def neutral_json(rng: random.Random, size: int) -> bytes:
    """A JSON object without any error field (an MCP result or a token answer)."""
    base = rng.choice([
        {"jsonrpc": "2.0", "id": rng.randint(1, 999), "result": {"tools": []}},
        {"access_token": "at-" + str(rng.random()), "token_type": "Bearer", "expires_in": 3600},
        {"client_id": "c-" + str(rng.randint(1, 10**6)), "redirect_uris": [REDIRECT_URI]},
        {"ok": True, "items": [rng.randint(0, 9) for _ in range(5)]},
    ])
    return pad_json(base, size, rng)


def pad_json(obj: dict, size: int, rng: random.Random | None = None) -> bytes:
    """`obj` with a "pad" string member making the encoding exactly `size` bytes (or as is when
    `obj` alone is larger)."""
    plain = jdump(obj)
    if size <= len(plain):
        return plain
    padded = dict(obj)
    padded["pad"] = ""
    need = size - len(jdump(padded))
    if need < 0:
        return plain
    alphabet = "0123456789abcdef"
    padded["pad"] = "".join(rng.choice(alphabet) for _ in range(need)) if rng else "0" * need
    out = jdump(padded)
    assert len(out) == size, (len(out), size)
    return out


def sse_body(rng: random.Random, gone: bool) -> tuple[bytes, list[int]]:
    events = []
    for k in range(rng.randint(3, 8)):
        data = jdump(GONE_JSON[k % len(GONE_JSON)]) if gone else jdump({"k": k, "v": rng.random()})
        events.append(b"event: message\nid: %d\ndata: %s\n\n" % (k, data))
    return b"".join(events), [len(e) for e in events]


def splits(rng: random.Random, n: int, mode: str) -> list[int]:
    if n == 0:
        return []
    if mode == "one":
        return [n]
    if mode == "bytes":
        return [1] * n
    out, left = [], n
    while left > 0:
        s = rng.choice([1, 1, 2, 3, 7, 64, 500, 1024, 4096, 8192]) if mode == "random" else n
        s = min(s, left)
        out.append(s)
        left -= s
    return out


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def corrupt_trailer(z: bytes, field: str) -> bytes:
    """A gzip member whose CRC32 (or ISIZE) trailer field does not match the data: RFC 1952
    section 2.3.1 decoders must reject it (zlib, Python's gzip, browsers do)."""
    at = len(z) - 8 if field == "crc" else len(z) - 4
    return z[:at] + bytes([z[at] ^ 0xFF]) + z[at + 1:]



# ---------------------------------------------------------------------------------------------
# The generator


def make_case(rng: random.Random, cid: int, h2_ok: bool, full: bool) -> Case:
    r = rng.random
    proto = "h2" if h2_ok and r() < 0.2 else "h1"

    # Response class first: rewrite-worthy classes go mostly to the endpoint that rewrites them,
    # so every run has a good share of expected rewrites next to the pass-through controls.
    cls = rng.choices(
        ["gone", "bad_grant", "error_in_success", "neutral_2xx", "neutral_4xx", "sse", "5xx",
         "nobody", "nonutf8", "malformed", "html_gone", "unknown_coding", "redirect"],
        weights=[22, 5, 5, 14, 10, 7, 5, 7, 5, 6, 3, 3, 5],
    )[0]
    favourite = {"gone": ["/token", "/token", "/revoke", "/authorize"],
                 "bad_grant": ["/token"], "error_in_success": ["/token", "/token", "/revoke"],
                 "redirect": ["/authorize"]}.get(cls)

    # Request: a target endpoint (with its usual method, sometimes another) or a non-target.
    target = r() < (0.85 if favourite else 0.7)
    if target:
        if favourite and r() < 0.8:
            base = rng.choice(favourite)
        else:
            base = rng.choice(["/token", "/token", "/revoke", "/authorize", "/register"])
        path = base
        if base == "/authorize":
            method = rng.choice(["GET", "GET", "POST"])
            path += AUTHORIZE_QUERY
        else:
            method = "POST" if r() < 0.9 else rng.choice(["GET", "PUT", "OPTIONS"])
            if r() < 0.1:
                path += "?x=1"
    else:
        path = rng.choice(NON_TARGETS)
        method = rng.choice(["POST", "POST", "GET"])
    req_headers: list[tuple[str, str]] = []
    req_body = b""
    if method in ("POST", "PUT"):
        if path.startswith(("/token", "/revoke")):
            req_headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            req_body = b"grant_type=refresh_token&refresh_token=rt-%d&client_id=c1" % cid
        else:
            req_headers.append(("Content-Type", "application/json"))
            req_body = b'{"jsonrpc":"2.0","id":%d,"method":"tools/list"}' % cid
    auth = rng.choice([None, None, "Basic YzE6czE=", "DPoP abc", "Bearer t.t.t"])
    if auth:
        req_headers.append(("Authorization", auth))
    req_headers.append(("X-Request-Id", f"diff-{cid}"))
    chunked_request = proto == "h1" and bool(req_body) and r() < 0.1

    if method == "HEAD":
        cls = "nobody"
    headers: list[tuple[str, str]] = []
    status = 200
    body = b""
    semantic = "neutral"  # neutral | gone | bad_grant | error_in_success
    expect_body = b""
    label = cls
    coding = "identity"
    size_target = rng.choice([0, 0, 0, 200, 1000, 3000, 9000])
    stream = False
    sse_pieces: list[int] = []

    if cls == "gone":
        semantic = "gone"
        status = rng.choice([400, 400, 400, 401, 403, 404, 200])
        shape = rng.randrange(len(GONE_JSON) + len(GONE_FORM))
        if shape < len(GONE_JSON):
            body = pad_json(GONE_JSON[shape], size_target, rng)
            ctype = rng.choice(["application/json", "application/json;charset=UTF-8",
                                "application/problem+json", "text/plain", None])
            if r() < 0.1:  # Latin-1 description: README "any charset" (rewritten by design)
                body = body[:-1] + b',"msg2":"caf\xe9"}'
                ctype, label = "application/json; charset=ISO-8859-1", "gone/latin1"
        else:
            body = GONE_FORM[shape - len(GONE_JSON)]
            ctype = rng.choice(["application/x-www-form-urlencoded", None])
            label = "gone/form"
        if ctype:
            headers.append(("Content-Type", ctype))
        label += f"/{status}"
    elif cls == "bad_grant":
        semantic = "bad_grant"
        status = rng.choice([400, 400, 200])
        body = pad_json(rng.choice(BAD_GRANT), size_target, rng)
        headers.append(("Content-Type", "application/json"))
    elif cls == "error_in_success":
        semantic = "error_in_success"
        status = rng.choice([200, 200, 201])
        src, out = rng.choice(ERROR_IN_SUCCESS)
        body = jdump(src)
        expect_body = jdump(out)
        headers.append(("Content-Type", "application/json"))
    elif cls == "neutral_2xx":
        status = rng.choice([200, 200, 201, 202])
        body = neutral_json(rng, size_target)
        headers.append(("Content-Type", rng.choice(["application/json", "text/plain", "application/octet-stream"])))
    elif cls == "neutral_4xx":
        status = rng.choice([400, 400, 401, 403, 404, 409, 422, 429])
        body = pad_json(rng.choice(NEUTRAL_4XX), size_target, rng)
        headers.append(("Content-Type", "application/json"))
    elif cls == "sse":
        status = rng.choice([200, 200, 400])
        gone = r() < 0.5
        body, sse_pieces = sse_body(rng, gone)
        headers += [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
        label = "sse/" + ("gone-text" if gone else "plain")
        stream = True
    elif cls == "5xx":
        status = rng.choice([500, 502, 503, 504])
        body = jdump(rng.choice(GONE_JSON))
        headers.append(("Content-Type", "application/json"))
        label = f"5xx/{status}-with-gone-body"
    elif cls == "nobody":
        status = rng.choice([204, 304, 200, 400])
        if status in (200, 400):
            method = "HEAD"  # HEAD answers carry headers only
            req_body, chunked_request = b"", False
            req_headers = [h for h in req_headers if h[0] != "Content-Type"]
            body = jdump(GONE_JSON[0])  # the upstream announces its length but sends none
            headers.append(("Content-Type", "application/json"))
            label = f"nobody/HEAD-{status}"
        else:
            headers += [("ETag", '"v1"'), ("Content-Type", "application/json")]
            label = f"nobody/{status}"
    elif cls == "nonutf8":
        status = rng.choice([200, 400, 401])
        n = rng.choice([1, 17, 300, 5000])
        body = bytes(rng.randrange(0x80, 0x100) for _ in range(n))
        if r() < 0.5:
            body = b'{"error":"' + body + b'"}'
        ct = rng.choice(["application/json", None, "application/x-www-form-urlencoded"])
        if ct:
            headers.append(("Content-Type", ct))
        # An `error` whose value is not a known code: never rewrite-worthy. A 2xx with an error
        # member that is not UTF-8 is lossily decoded into an unknown code -> error_in_success
        # on /token; keep the class neutral by using 4xx for the JSON-wrapped variant.
        if body.startswith(b'{"error"') and status == 200:
            status = 400
    elif cls == "malformed":
        status = rng.choice([400, 401, 200])
        src = jdump(rng.choice(GONE_JSON))
        variant = rng.choice(["truncated", "trailing", "deep", "array", "string"])
        if variant == "truncated":
            body = src[: rng.randrange(1, len(src) - 1)]
        elif variant == "trailing":
            body = src + b" garbage"
        elif variant == "deep":
            body = b"[" * 5000 + src
        elif variant == "array":
            body = b"[" + src + b"]"
        else:
            body = json.dumps(src.decode()).encode()
        headers.append(("Content-Type", "application/json"))
        label = f"malformed/{variant}"
    elif cls == "html_gone":
        status = 400
        body = b"<html><body>The requested OAuth 2.0 Client does not exist.</body></html>"
        headers.append(("Content-Type", "text/html; charset=utf-8"))
    elif cls == "unknown_coding":
        status = 400
        body = jdump(GONE_JSON[1])
        headers += [("Content-Type", "application/json"), ("Content-Encoding", rng.choice(["br", "zstd", "gzip, br"]))]
        coding = "opaque"
        label = "unknown_coding"
    elif cls == "redirect":
        if path.startswith("/authorize"):
            status = rng.choice([302, 303])
            gone = r() < 0.6
            loc = REDIRECT_URI + ("?error=invalid_client&state=s" if gone else "?code=abc&state=s")
            headers += [("Location", loc), ("Content-Type", "text/html")]
            body = b"<a href='x'>redirect</a>" * rng.choice([0, 1, 40])
            semantic = "redirect_gone" if gone else "neutral"
            label = "redirect/" + ("gone" if gone else "code")
        else:
            status = 302
            headers.append(("Location", "/elsewhere"))
            label = "redirect/other"

    # Extra upstream headers the filter must keep (or drop, on a rewrite: REPLACED_HEADERS).
    extra = [("X-Upstream-Case", str(cid)), ("Set-Cookie", "s=1; Path=/"),
             ("Cache-Control", "private"), ("ETag", '"e1"'), ("Vary", "Accept-Encoding"),
             ("WWW-Authenticate", 'Basic realm="upstream"'), ("Access-Control-Allow-Origin", "*"),
             ("X-Content-Type-Options", "nosniff")]
    for h in rng.sample(extra, rng.randint(0, 4)):
        if not any(k.lower() == h[0].lower() for k, _ in headers):
            headers.append(h)

    # Content coding (readable ones only for classes whose body is an entity).
    gz_variant = None
    if cls in ("gone", "bad_grant", "neutral_2xx", "neutral_4xx", "malformed") and r() < 0.2:
        gz_variant = rng.choice(["valid", "valid", "deflate", "truncated", "bomb", "bad_crc"])
        if gz_variant == "deflate":
            body = zlib.compress(body)
            headers.append(("Content-Encoding", "deflate"))
        elif gz_variant == "bomb":
            # A small encoded body that decodes to far more than the cap (1 MiB; 10 MiB in full).
            decoded = pad_json({"error": "invalid_client"}, (10 if full else 1) << 20)
            body = gz(decoded)
            semantic = "undecodable"
            headers.append(("Content-Encoding", "gzip"))
        else:
            z = gz(body)
            if gz_variant == "truncated":
                z = z[: rng.randrange(10, len(z) - 1)]
                semantic = "undecodable"
            elif gz_variant == "bad_crc":
                z = corrupt_trailer(z, "crc")
                semantic = "corrupt_trailer:" + semantic
            body = z
            headers.append(("Content-Encoding", rng.choice(["gzip", "x-gzip"])))
        coding = "gzip"
        label += f"/{gz_variant}-gzip" if gz_variant != "deflate" else "/deflate"

    # Framing and splits.
    framing = "none" if status in (204, 304) else rng.choices(
        ["cl", "chunked", "close"], weights=[55, 40, 5])[0]
    if stream:
        framing = "chunked"
    split_mode = rng.choice(["one", "random", "random", "bytes"])
    if split_mode == "bytes" and len(body) > 3000:
        split_mode = "random"
    pieces = splits(rng, len(body), split_mode)
    if stream:
        pieces = sse_pieces  # one chunk per event
    trailers = []
    if framing == "chunked" and r() < 0.25:
        trailers = [("X-Checksum", "abc123"), ("X-Trailer-Case", str(cid))][: rng.randint(1, 2)]
        label += "-empty+trailers" if not body else "/trailers"
    pause = 0.002 if (stream or (framing != "none" and r() < 0.1)) else 0.0
    if pause and len(pieces) > 40:
        pause = 0.0  # keep each case short: pacing only for a few pieces
    if framing != "none":
        label += f"/{framing}"

    answer = Answer(status=status, headers=headers, body=body, framing=framing, pieces=pieces,
                    trailers=trailers, pause_s=pause)
    case = Case(id=cid, label=label, method=method, path=path, req_headers=req_headers,
                req_body=req_body, answer=answer, expect="identical", proto=proto,
                chunked_request=chunked_request, expect_body=expect_body)
    case.expect = oracle(case, semantic, coding)
    return case


def special_cases(start: int, full: bool) -> list[Case]:
    """Fixed boundary cases every run has: the cap from both sides, with CL and chunked, and
    large over-cap answers."""
    out = []
    big = [64 * 1024, 1 << 20] + ([8 << 20] if full else [])
    gone = GONE_JSON[0]
    specs = []
    for framing in ("cl", "chunked"):
        specs.append(("cap/exactly-cap", CAP, framing, "invalid_client"))
        specs.append(("cap/cap+1", CAP + 1, framing, "identical"))
    for n in big:
        for framing in ("cl", "chunked"):
            specs.append((f"overcap/{n}", n, framing, "identical"))
    cid = start
    for proto in ("h1", "h2"):
        for label, size, framing, expect in specs:
            rng = random.Random(cid)
            body = pad_json(gone, size, rng)
            pieces = splits(rng, size, "random") if framing == "chunked" else []
            ans = Answer(status=400, headers=[("Content-Type", "application/json")], body=body,
                         framing=framing, pieces=pieces)
            out.append(Case(id=cid, label=f"{label}/{framing}", method="POST", path="/token",
                            req_headers=[("Content-Type", "application/x-www-form-urlencoded")],
                            req_body=b"grant_type=refresh_token&refresh_token=r", answer=ans,
                            expect=expect, proto=proto))
            cid += 1
        # gzip edge cases of a rewrite-worthy body: valid (rewritten), then truncated inside the
        # trailer or the data, and with a corrupt CRC32 or ISIZE (all undecodable).
        z = gz(jdump(gone))
        for label, body, semantic in [
            ("gzip/valid", z, "gone"),
            ("gzip/truncated-1", z[:-1], "undecodable"),
            ("gzip/truncated-8", z[:-8], "undecodable"),
            ("gzip/truncated-12", z[:-12], "undecodable"),
            ("gzip/bad_crc", corrupt_trailer(z, "crc"), "corrupt_trailer:gone"),
            ("gzip/bad_isize", corrupt_trailer(z, "isize"), "corrupt_trailer:gone"),
        ]:
            ans = Answer(status=400, headers=[("Content-Type", "application/json"),
                                              ("Content-Encoding", "gzip")], body=body)
            case = Case(id=cid, label=f"{label}/cl", method="POST", path="/token",
                        req_headers=[("Content-Type", "application/x-www-form-urlencoded")],
                        req_body=b"grant_type=refresh_token&refresh_token=r", answer=ans,
                        expect="identical", proto=proto)
            case.expect = oracle(case, semantic, "gzip")
            out.append(case)
            cid += 1
        # Bodiless and trailer-only answers: the filter decides at header time (Replace) or in
        # the trailers callback with no body bytes at all.
        redirect = [("Location", REDIRECT_URI + "?error=invalid_client&state=s"),
                    ("Content-Type", "text/html")]
        gone_hdr = [("Content-Type", "application/json")]
        for label, path, hdrs, body, framing, trailers, semantic in [
            ("empty/redirect/gone-cl-0", "/authorize", redirect, b"", "cl", [], "redirect_gone"),
            ("empty/redirect/gone-chunked-empty", "/authorize", redirect, b"", "chunked", [],
             "redirect_gone"),
            ("empty/redirect/gone-empty+trailers", "/authorize", redirect, b"", "chunked",
             [("X-Checksum", "abc")], "redirect_gone"),
            ("empty/redirect/gone-body+trailers", "/authorize", redirect, b"<p>moved</p>",
             "chunked", [("X-Checksum", "abc")], "redirect_gone"),
            ("empty/token-400-empty+trailers", "/token", gone_hdr, b"", "chunked",
             [("X-Checksum", "abc")], "neutral"),
            ("empty/token-gone-body+trailers", "/token", gone_hdr, jdump(gone), "chunked",
             [("X-Checksum", "abc")], "gone"),
        ]:
            status = 302 if "redirect" in label else 400
            method = "GET" if path == "/authorize" else "POST"
            ans = Answer(status=status, headers=list(hdrs), body=body, framing=framing,
                         trailers=trailers)
            case = Case(id=cid, label=label, method=method,
                        path=path + (AUTHORIZE_QUERY if path == "/authorize" else ""),
                        req_headers=[] if method == "GET" else
                        [("Content-Type", "application/x-www-form-urlencoded")],
                        req_body=b"" if method == "GET" else b"grant_type=refresh_token&refresh_token=r",
                        answer=ans, expect="identical", proto=proto)
            case.expect = oracle(case, semantic, "identity")
            out.append(case)
            cid += 1
        # The same over the cap on a non-target path.
        ans = Answer(status=200, headers=[("Content-Type", "application/json")],
                     body=pad_json({"jsonrpc": "2.0", "id": 1, "result": {}}, CAP + 1),
                     framing="chunked", pieces=[1] * 64 + [CAP + 1 - 64])
        out.append(Case(id=cid, label="overcap/non-target/1-byte-chunks", method="POST",
                        path="/mcp", req_headers=[("Content-Type", "application/json")],
                        req_body=b"{}", answer=ans, expect="identical", proto=proto))
        cid += 1
    return out


def oracle(case: Case, semantic: str, coding: str) -> str:
    """What the filter must do (see the module docstring)."""
    kind = case.kind
    a = case.answer
    if kind is None or kind == "registration":
        return "identical"
    accepted = {"token": ("POST",), "revocation": ("POST",), "authorization": ("GET", "POST")}
    if case.method not in accepted[kind]:
        return "identical"
    if semantic == "redirect_gone":
        if kind != "authorization":
            return "identical"
        # Replaced at header time (filter/src/adapter/mod.rs): when the redirect's headers end
        # the stream (Content-Length: 0), or an empty body ends in trailers (Envoy has no body
        # buffer to write then), only status and headers change and no page is sent.
        headers_only = not a.body and (a.framing == "cl" or bool(a.trailers))
        return "stale_page_headers_only" if headers_only else "stale_page"
    if a.status in (204, 205, 304) or case.method == "HEAD":
        return "identical"
    if not (200 <= a.status < 300 or 400 <= a.status < 500):
        return "identical"
    if coding == "opaque" or semantic in ("neutral", "undecodable"):
        return "identical"
    if semantic.startswith("corrupt_trailer:"):
        # RFC 1952: a member whose CRC32 or ISIZE does not match is corrupt; conforming
        # decoders (zlib, Python, browsers) refuse it. ENVOY-NOTES I2: undecodable -> identical.
        return "identical"
    ctype = next((v for k, v in a.headers if k.lower() == "content-type"), "")
    essence = ctype.split(";")[0].strip().lower()
    if essence not in ("", "application/json", "text/json", "application/x-www-form-urlencoded",
                       "text/plain") and not essence.endswith("+json"):
        return "identical"
    if len(a.body) > CAP:
        return "identical"
    success = 200 <= a.status < 300
    if semantic == "gone":
        if kind == "revocation" and success:
            return "identical"
        return "stale_page" if kind == "authorization" else "invalid_client"
    if semantic == "bad_grant":
        return "invalid_grant" if kind == "token" else "identical"
    if semantic == "error_in_success":
        return "error_in_success" if kind == "token" and success else "identical"
    return "identical"


def expected_reply(case: Case) -> tuple[int, list[tuple[str, str]], bytes]:
    """The reply the filter sends for a rewrite (filter/src/reply.rs)."""
    json_headers = [("content-type", "application/json"), ("cache-control", "no-store"),
                    ("pragma", "no-cache")]
    if case.expect == "invalid_client":
        auth = next((v for k, v in case.req_headers if k.lower() == "authorization"), None)
        scheme = "Basic"
        if auth:
            s = auth.strip().split(" ")[0]
            if s.lower() != "basic":
                scheme = s
        body = jdump({"error": "invalid_client", "error_description": INVALID_CLIENT_DESCRIPTION})
        return 401, json_headers + [("www-authenticate",
                                     f'{scheme} realm="oauth", error="invalid_client"')], body
    if case.expect == "invalid_grant":
        return 400, json_headers, jdump({"error": "invalid_grant",
                                         "error_description": INVALID_GRANT_DESCRIPTION})
    if case.expect == "error_in_success":
        return 400, json_headers, case.expect_body
    if case.expect in ("stale_page", "stale_page_headers_only"):
        body = b"" if case.expect == "stale_page_headers_only" else STALE_PAGE
        return 400, [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store"),
                     ("pragma", "no-cache"), ("content-security-policy", "default-src 'none'"),
                     ("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer")], body
    raise ValueError(case.expect)


def generate(count: int, seed: int, h2_ok: bool, full: bool) -> list[Case]:
    rng = random.Random(seed)
    cases = [make_case(rng, i, h2_ok, full) for i in range(count)]
    specials = special_cases(count, full)
    if not h2_ok:
        specials = [c for c in specials if c.proto == "h1"]
    return cases + specials
