"""Drives the official MCP Python SDK client (`mcp` from PyPI) through the
story, for python-sdk.test.mjs: register, authorize, tools/list, echo; then
wait (on stdin) while the test deletes the client at the provider and the
access token expires; then call echo again and report what happened.

Protocol: one JSON object per stdout line.
  {"event": "ready", "client_id": ..., "exp": <access token exp>}
  (reads one line from stdin: "go")
  {"event": "result", ...}
Never prints tokens, codes or secrets.

Usage: python python_client.py SERVER_URL
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT_URI = "http://127.0.0.1/e2e-callback"


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.registrations: list[str] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
        self.registrations.append(client_info.client_id)


def error_code(content_type: str, body: str) -> str | None:
    if "x-www-form-urlencoded" in content_type:
        return (parse_qs(body).get("error") or [None])[0]
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, dict):
        return parsed.get("error") or parsed.get("errorCode") or parsed.get("error_code")
    return None


async def browse(url: str) -> dict:
    """A scripted browser: follow the AS's redirects (cookies kept) up to the
    redirect to REDIRECT_URI; never leaves the authorization URL's origin."""
    start = urlparse(url)
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as browser:
        current = url
        for _ in range(12):
            cur = urlparse(current)
            if (cur.scheme, cur.netloc) != (start.scheme, start.netloc):
                return {"error": "left_origin"}
            resp = await browser.get(current, headers={"accept": "text/html"})
            location = resp.headers.get("location")
            if 300 <= resp.status_code < 400 and location:
                nxt = urljoin(current, location)
                if nxt.startswith(REDIRECT_URI):
                    q = parse_qs(urlparse(nxt).query)
                    one = lambda k: (q.get(k) or [None])[0]  # noqa: E731
                    if one("code"):
                        return {"code": one("code"), "state": one("state"), "iss": one("iss")}
                    return {"error": one("error") or "no_code", "error_description": one("error_description")}
                current = nxt
                continue
            page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.text)).strip()[:200]
            return {
                "error": "no_redirect",
                "status": resp.status_code,
                "at": urlparse(current).path,
                "content_type": resp.headers.get("content-type", ""),
                "page": page,
            }
    return {"error": "too_many_redirects"}


def jwt_exp(token: str | None) -> int | None:
    if not token:
        return None
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload)).get("exp")
    except Exception:  # noqa: BLE001
        return None


async def main(server_url: str) -> int:
    storage = MemoryStorage()
    pending: dict = {}
    authorizations: list[dict] = []
    token_answers: list[dict] = []

    async def redirect_handler(url: str) -> None:
        client_id = (parse_qs(urlparse(url).query).get("client_id") or [None])[0]
        result = await browse(url)
        pending["result"] = result
        authorizations.append(
            {"client_id": client_id, "outcome": "code" if result.get("code") else {k: v for k, v in result.items() if k != "code"}}
        )

    async def callback_handler() -> AuthorizationCodeResult:
        result = pending.pop("result", {})
        if not result.get("code"):
            raise RuntimeError(f"authorization produced no code: {result.get('error')} (status {result.get('status')} at {result.get('at')})")
        return AuthorizationCodeResult(code=result["code"], state=result.get("state"), iss=result.get("iss"))

    async def on_response(response: httpx2.Response) -> None:
        req = response.request
        if req.method == "POST" and req.url.path == "/token":
            await response.aread()
            body = response.text
            grant = (parse_qs(req.content.decode("utf-8", "replace")).get("grant_type") or [None])[0]
            ok_tokens = response.status_code == 200 and '"access_token"' in body
            token_answers.append(
                {
                    "grant_type": grant,
                    "status": response.status_code,
                    "content_type": response.headers.get("content-type", ""),
                    "error": None if ok_tokens else error_code(response.headers.get("content-type", ""), body),
                    "body": "(tokens)" if ok_tokens else body,
                }
            )

    provider = OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(
            client_name="mcp-oauth-guard e2e (python)",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async with httpx2.AsyncClient(auth=provider, event_hooks={"response": [on_response]}, timeout=30) as http:

        async def echo(text: str) -> str:
            async with Client(streamable_http_client(server_url, http_client=http), mode="legacy") as client:
                tools = await client.list_tools()
                assert [t.name for t in tools.tools] == ["echo"], tools
                result = await client.call_tool("echo", {"text": text})
                return result.content[0].text  # type: ignore[union-attr]

        first = await echo("hello")
        old_client_id = storage.client_info.client_id if storage.client_info else None
        emit(
            {
                "event": "ready",
                "client_id": old_client_id,
                "has_refresh_token": bool(storage.tokens and storage.tokens.refresh_token),
                # when the access token expires at the AS (JWT exp) and when the SDK itself
                # considers it expired (receipt time + expires_in): it refreshes only after the latter
                "exp": jwt_exp(storage.tokens.access_token if storage.tokens else None),
                "sdk_expiry": provider.context.token_expiry_time,
                "first": first,
            }
        )

        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            emit({"event": "aborted"})
            return 2

        answers_before = len(token_answers)
        auths_before = len(authorizations)
        outcome: dict
        try:
            text = await asyncio.wait_for(echo("hello again"), timeout=60)
            outcome = {"ok": True, "text": text}
        except BaseException as exc:  # noqa: BLE001 - report whatever the SDK raised
            inner = exc
            while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
                inner = inner.exceptions[0]
            outcome = {"ok": False, "error": f"{type(inner).__name__}: {str(inner)[:300]}"}

        emit(
            {
                "event": "result",
                **outcome,
                "old_client_id": old_client_id,
                "client_id": storage.client_info.client_id if storage.client_info else None,
                "registrations": storage.registrations,
                "token_answers": token_answers[answers_before:],
                "authorizations": authorizations[auths_before:],
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
