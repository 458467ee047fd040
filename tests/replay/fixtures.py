"""Provider fixtures: load, validate, and work out the exact bytes to replay.

The format is defined in /work/shared/fixtures/README.md. Every problem with a
file is reported as a FixtureError naming the field, so the runner can print a
failure line for it instead of skipping it.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

# RFC 9110 section 5.6.2 token, used for methods and header names.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

# Framing headers are recomputed by the upstream and the client; sending a
# recorded value as well would make the message invalid.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})

# The header that tells the replay upstream which recorded answer to send.
FIXTURE_ID_HEADER = "x-fixture-id"


class FixtureError(ValueError):
    """A fixture file that cannot be replayed; the message names the field."""


@dataclass(frozen=True)
class Fixture:
    """One validated fixture, with the request to send and the answer to serve."""

    file: str
    index: int
    provider: str
    endpoint: str
    kind: str
    method: str
    path: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    recorded_status: int | None
    status: int
    response_headers: list[tuple[str, str]]
    response_body: bytes

    @property
    def url_path(self) -> str:
        """The request path without its query (what a policy endpoint matches)."""
        return self.path.split("?", 1)[0]

    def query_param(self, name: str) -> str | None:
        """First value of a query parameter of the request, percent-decoded."""
        if "?" not in self.path:
            return None
        for key, value in parse_qsl(self.path.split("?", 1)[1], keep_blank_values=True):
            if key == name:
                return value
        return None

    def request_header(self, name: str) -> str | None:
        """First value of a request header (case-insensitive name)."""
        return header_value(self.request_headers, name)


def _headers(obj: object, where: str) -> list[tuple[str, str]]:
    """A recorded header object as a list of (name, value); list values repeat the header."""
    if obj is None:
        return []
    if not isinstance(obj, dict):
        raise FixtureError(f"{where} must be an object of header name to value")
    out: list[tuple[str, str]] = []
    for name, value in obj.items():
        if not _TOKEN.match(name):
            raise FixtureError(f"{where}: header name {name!r} is not an HTTP token")
        if name.lower() == FIXTURE_ID_HEADER:
            raise FixtureError(f"{where}: header {name!r} is reserved for the replay harness")
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str):
                raise FixtureError(f"{where}.{name} must be a string or a list of strings")
            if any(ch in item for ch in "\r\n\0"):
                raise FixtureError(f"{where}.{name} contains CR, LF or NUL")
            out.append((name, item))
    return out


def _text(obj: object, where: str) -> str:
    if obj is None:
        return ""
    if not isinstance(obj, str):
        raise FixtureError(f"{where} must be a string")
    return obj


def _object(obj: object, where: str) -> dict:
    if not isinstance(obj, dict):
        raise FixtureError(f"{where} must be an object")
    return obj


def header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    """First value of a header in a (name, value) list, case-insensitive; None when absent."""
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def effective_status(recorded: int | None, headers: list[tuple[str, str]]) -> int:
    """The status to replay: the recorded one, or for `null` 400 for JSON and 200 otherwise."""
    if recorded is not None:
        return recorded
    content_type = (header_value(headers, "content-type") or "").lower()
    return 400 if "json" in content_type else 200


def response_body_bytes(body: str, headers: list[tuple[str, str]]) -> bytes:
    """The body bytes to serve; a text body under `content-encoding: gzip` is gzipped.

    A body that already starts with the gzip magic (written with \\u001f\\u008b
    escapes) is taken as the compressed bytes themselves.
    """
    encodings = ",".join(v for k, v in headers if k.lower() == "content-encoding").lower()
    gzipped = "gzip" in [e.strip() for e in encodings.split(",")]
    if gzipped and body.startswith("\x1f\x8b"):
        try:
            return body.encode("latin-1")
        except UnicodeEncodeError:
            pass
    data = body.encode("utf-8")
    if gzipped:
        # mtime=0 keeps the bytes identical from one run to the next.
        return gzip.compress(data, mtime=0)
    return data


def parse_fixture(file: str, index: int, text: str) -> Fixture:
    """Validate one fixture file's text; raise FixtureError naming the bad field."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FixtureError(f"not valid JSON: {exc}") from None
    doc = _object(doc, "top level")

    provider = doc.get("provider")
    if not isinstance(provider, str) or not provider.strip():
        raise FixtureError("provider must be a non-empty string")
    endpoint = doc.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise FixtureError("endpoint must be a non-empty string")

    request = _object(doc.get("request"), "request")
    method = request.get("method")
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise FixtureError("request.method must be an HTTP method token")
    path = request.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise FixtureError("request.path must be a string starting with '/'")
    if any(ord(ch) <= 0x20 or ord(ch) >= 0x7F for ch in path):
        raise FixtureError("request.path contains spaces, control or non-ASCII characters")
    request_headers = _headers(request.get("headers"), "request.headers")
    request_body = _text(request.get("body"), "request.body").encode("utf-8")

    response = _object(doc.get("response"), "response")
    if "status" not in response:
        raise FixtureError("response.status is missing (use null when unknown)")
    status = response["status"]
    if status is not None and (
        not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599
    ):
        raise FixtureError("response.status must be an integer 100..599 or null")
    response_headers = _headers(response.get("headers"), "response.headers")
    response_text = _text(response.get("body"), "response.body")

    expect = _object(doc.get("expect"), "expect")
    kind = expect.get("kind")
    if not isinstance(kind, str) or not kind:
        raise FixtureError("expect.kind must be a non-empty string")

    return Fixture(
        file=file,
        index=index,
        provider=provider,
        endpoint=endpoint,
        kind=kind,
        method=method,
        path=path,
        request_headers=[(k, v) for k, v in request_headers if k.lower() not in FRAMING_HEADERS],
        request_body=request_body,
        recorded_status=status,
        status=effective_status(status, response_headers),
        response_headers=[
            (k, v) for k, v in response_headers if k.lower() not in FRAMING_HEADERS
        ],
        response_body=response_body_bytes(response_text, response_headers),
    )


@dataclass(frozen=True)
class LoadResult:
    """Every *.json file of a folder, in sorted order: a Fixture or the error that stops it."""

    fixtures: list[Fixture]
    errors: list[tuple[int, str, str]]  # (index, file name, reason)

    @property
    def total(self) -> int:
        return len(self.fixtures) + len(self.errors)


def load_dir(directory: Path) -> LoadResult:
    """Load every *.json file of `directory` (not recursive), sorted by name."""
    fixtures: list[Fixture] = []
    errors: list[tuple[int, str, str]] = []
    for index, path in enumerate(sorted(directory.glob("*.json"))):
        try:
            text = path.read_text(encoding="utf-8")
            fixtures.append(parse_fixture(path.name, index, text))
        except (OSError, UnicodeDecodeError) as exc:
            errors.append((index, path.name, f"cannot read: {exc}"))
        except FixtureError as exc:
            errors.append((index, path.name, f"malformed fixture: {exc}"))
    return LoadResult(fixtures, errors)
