"""The `expect.kind` checks of /work/shared/fixtures/README.md, on captured responses.

Every check returns a list of reasons; an empty list is a pass. "A" is the
listener with the filter, "B" the same Envoy without it.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from fixtures import Fixture

# Headers that legitimately differ between two passes through Envoy.
VOLATILE_HEADERS = frozenset({"date", "x-envoy-upstream-service-time", "server"})

# Decoded bodies above this are not parsed (a check is not a decompression bomb test).
MAX_DECODED_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class Response:
    """What one listener sent back: status, headers in wire order (repeats kept), raw body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def _decoded_body(resp: Response) -> bytes:
    """The body as a client sees it after undoing `content-encoding: gzip`/`deflate`."""
    encodings = [
        e.strip().lower() for v in resp.values("content-encoding") for e in v.split(",")
    ]
    body = resp.body
    for enc in reversed([e for e in encodings if e and e != "identity"]):
        if enc in ("gzip", "x-gzip"):
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            d = zlib.decompressobj()
        else:
            raise ValueError(f"content-encoding {enc!r} is not supported by the checker")
        try:
            body = d.decompress(body, MAX_DECODED_BODY)
        except zlib.error as exc:
            raise ValueError(f"body does not decode as {enc}: {exc}") from None
        if d.unconsumed_tail:
            raise ValueError(f"{enc} body decodes to more than {MAX_DECODED_BODY} bytes")
    return body


_ABSENT = object()


def json_error(resp: Response) -> tuple[object, str | None]:
    """(the `error` member of a JSON object body, or _ABSENT; None) or (None, why it is not one)."""
    try:
        doc = json.loads(_decoded_body(resp).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"body is not JSON ({type(exc).__name__}: {exc}); body {preview(resp)}"
    if not isinstance(doc, dict):
        return None, f"body is JSON but not an object; body {preview(resp)}"
    return doc.get("error", _ABSENT), None


def show_error(error: object) -> str:
    return "error member absent" if error is _ABSENT else f"error {error!r}"


def preview(resp: Response, limit: int = 120) -> str:
    text = resp.body[:limit].decode("utf-8", "backslashreplace")
    return repr(text + ("..." if len(resp.body) > limit else ""))


def _directives(values: list[str]) -> set[str]:
    return {d.split("=", 1)[0].strip().lower() for v in values for d in v.split(",")}


def _scheme(challenge: str) -> str:
    return challenge.strip().split(" ", 1)[0].split(",", 1)[0].lower()


def check_invalid_client(fx: Fixture, a: Response, b: Response) -> list[str]:
    """401, JSON `error`=invalid_client, `Cache-Control: no-store`, WWW-Authenticate
    present, and with scheme Basic when the request sent `Authorization: Basic`."""
    reasons = []
    if a.status != 401:
        reasons.append(f"status {a.status}, want 401")
    error, why = json_error(a)
    if why:
        reasons.append(why)
    elif error != "invalid_client":
        reasons.append(f"{show_error(error)}, want 'invalid_client'")
    cache_control = a.values("cache-control")
    if not cache_control:
        reasons.append("Cache-Control absent, want no-store")
    elif "no-store" not in _directives(cache_control):
        reasons.append(f"Cache-Control {', '.join(cache_control)!r} lacks no-store")
    challenges = [v for v in a.values("www-authenticate") if v.strip()]
    authorization = fx.request_header("authorization") or ""
    if not challenges:
        reasons.append("WWW-Authenticate absent")
    elif _scheme(authorization) == "basic" and "basic" not in map(_scheme, challenges):
        reasons.append(f"request used Basic but WWW-Authenticate is {challenges}")
    return reasons


def check_not_invalid_client(fx: Fixture, a: Response, b: Response) -> list[str]:
    """A 4xx whose JSON `error` is not invalid_client (a non-JSON body fails)."""
    reasons = []
    if not 400 <= a.status <= 499:
        reasons.append(f"status {a.status}, want 4xx")
    error, why = json_error(a)
    if why:
        reasons.append(why)
    elif error == "invalid_client":
        reasons.append("error is 'invalid_client': the client would throw away a live registration")
    return reasons


def check_invalid_grant(fx: Fixture, a: Response, b: Response) -> list[str]:
    """A 4xx (so never 200) JSON body whose `error` is invalid_grant."""
    reasons = []
    if not 400 <= a.status <= 499:
        reasons.append(f"status {a.status}, want 4xx")
    error, why = json_error(a)
    if why:
        reasons.append(why)
    elif error != "invalid_grant":
        reasons.append(f"{show_error(error)}, want 'invalid_grant'")
    return reasons


def comparable_headers(resp: Response) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in resp.headers if k.lower() not in VOLATILE_HEADERS]


def check_unchanged(fx: Fixture, a: Response, b: Response) -> list[str]:
    """A and B identical: status, headers in order (except volatile ones), body bytes."""
    reasons = []
    if a.status != b.status:
        reasons.append(f"status {b.status} -> {a.status}")
    ha, hb = comparable_headers(a), comparable_headers(b)
    if ha != hb:
        if sorted(ha) == sorted(hb):
            reasons.append("same headers in a different order")
        else:
            gone = [h for h in hb if h not in ha]
            added = [h for h in ha if h not in hb]
            reasons.append(f"headers differ: without filter only {gone}, with filter only {added}")
    if a.body != b.body:
        reasons.append(
            f"body differs ({len(b.body)} -> {len(a.body)} bytes): {preview(b)} -> {preview(a)}"
        )
    return reasons


def _points_at(location: str, redirect_uri: str) -> bool:
    """Whether a Location value targets the redirect_uri (same scheme, authority and path)."""
    if location.startswith(redirect_uri):
        return True
    try:
        loc, red = urlsplit(location.strip()), urlsplit(redirect_uri)
    except ValueError:
        return False
    return (
        bool(red.netloc)
        and loc.scheme.lower() == red.scheme.lower()
        and loc.netloc.lower() == red.netloc.lower()
        and (loc.path or "/") == (red.path or "/")
    )


def check_no_client_redirect(fx: Fixture, a: Response, b: Response) -> list[str]:
    """No Location (3xx or not) pointing at the request's redirect_uri; other redirects are fine."""
    redirect_uri = fx.query_param("redirect_uri")
    if not redirect_uri:
        return ["request has no redirect_uri query parameter to check against"]
    reasons = []
    for location in a.values("location"):
        if _points_at(location, redirect_uri):
            what = "redirect" if 300 <= a.status <= 399 else f"status {a.status} with a Location"
            reasons.append(f"{what} to the client's redirect_uri: {location}")
    return reasons


CHECKS = {
    "invalid_client": check_invalid_client,
    "not_invalid_client": check_not_invalid_client,
    "invalid_grant": check_invalid_grant,
    "unchanged": check_unchanged,
    "no_client_redirect": check_no_client_redirect,
}


def check_no_envoy_5xx(fx: Fixture, a: Response) -> list[str]:
    """The filter listener must not answer a 5xx the provider did not send."""
    if a.status >= 500 and a.status != fx.status:
        return [f"Envoy-generated {a.status} (upstream sent {fx.status}); body {preview(a)}"]
    return []


def check_baseline(fx: Fixture, b: Response) -> list[str]:
    """Listener B (no filter) must deliver what the upstream served, or the run proves nothing."""
    reasons = []
    if b.status != fx.status:
        reasons.append(f"status {b.status}, upstream served {fx.status}")
    if fx.method != "HEAD" and b.body != fx.response_body:
        reasons.append(f"body differs from the served one: {preview(b)}")
    return [f"baseline without filter broken: {r}" for r in reasons]


def check(fx: Fixture, a: Response, b: Response) -> list[str]:
    """All reasons fixture `fx` fails, given A (with filter) and B (without)."""
    if fx.kind not in CHECKS:
        return [f"unknown expect.kind {fx.kind!r} (known: {', '.join(CHECKS)})"]
    return check_baseline(fx, b) + check_no_envoy_5xx(fx, a) + CHECKS[fx.kind](fx, a, b)
