"""Client lifecycle through real Envoys: max age, registration epoch, signed client_ids,
/register checks, bearer checks at the MCP endpoint, and two replicas that agree with no
shared state. A third Envoy without the filter is the control: there, nothing is refused.

Everything listens on 127.0.0.1 on free ports and is stopped at the end.
"""

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "demo"))
from run_demo import ENVOY, REDIRECT, free_port, local_envoy_config, request, wait_http  # noqa: E402

MAX_AGE = 6
KEY = base64.b64encode(secrets.token_bytes(32)).decode()


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def policy(epoch):
    return f"""version: 1
providers:
  - name: oauth
    preset: auto
    endpoints:
      token: [/token]
      revocation: [/revoke]
      registration: [/register]
      authorization: [/authorize]
    lifecycle:
      client_max_age: {MAX_AGE}s
      registration_epoch: "{rfc3339(epoch)}"
      inject_client_secret_expires_at: true
      sign_client_ids: true
      signing_keys: [{{id: k1, secret: "{KEY}"}}]
      mcp_endpoints: [/mcp]
      resource_metadata: "http://127.0.0.1/.well-known/oauth-protected-resource/mcp"
"""


def envoy_config(provider, listen, admin, policy_text, with_filter=True):
    text = local_envoy_config(provider, listen, admin)
    # The MCP route gets the filter too: lifecycle checks bearer tokens there.
    text = text.replace(
        "              - match: {prefix: /.well-known/}",
        "              - match: {path: /mcp}\n"
        "                route: {cluster: mcp_server}\n"
        "                typed_per_filter_config: *guard_on\n"
        "              - match: {prefix: /.well-known/}")
    start = text.index("                  value: |\n") + len("                  value: |\n")
    end = text.index("                vm_config:")
    body = "".join("                    " + line + "\n" for line in policy_text.splitlines())
    text = text[:start] + body + text[end:]
    if not with_filter:
        text = text.replace("disabled: true", "disabled: true  # control").replace(
            "typed_per_filter_config: *guard_on", "typed_per_filter_config: {}")
        text = text.replace("typed_per_filter_config: &guard_on", "typed_per_filter_config: &guard_on_unused")
        # Keep the anchor defined but never enable the filter on any route.
        text = text.replace("                  mcp-oauth-guard:\n                    \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig\n                    config: {}",
                            "                  mcp-oauth-guard:\n                    \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig\n                    disabled: true")
    return text


class Envoys:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="guard-lifecycle-")
        self.procs = {}
        self.logs = {}

    def start(self, name, provider, policy_text, with_filter=True, port=None):
        listen, admin = port or free_port(), free_port()
        path = os.path.join(self.tmp, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(envoy_config(provider, listen, admin, policy_text, with_filter))
        log = open(os.path.join(self.tmp, f"{name}.log"), "a")
        self.logs[name] = log.name
        self.procs[name] = subprocess.Popen(
            [ENVOY, "-c", path, "--concurrency", "1", "--use-dynamic-base-id", "-l", "info"],
            stdout=subprocess.DEVNULL, stderr=log)
        if not wait_http(admin, "/ready"):
            print(open(log.name).read()[-3000:])
            raise SystemExit(f"lifecycle: Envoy {name} did not start")
        return listen

    def stop(self, name):
        p = self.procs.pop(name)
        p.terminate()
        p.wait(timeout=10)

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)


def bearer(claims):
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    return "Bearer " + ".".join([enc(b'{"alg":"RS256"}'), enc(json.dumps(claims).encode()), enc(b"sig")])


def main():
    failures = []

    def check(name, ok, detail=""):
        print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
        if not ok:
            failures.append(name)

    provider_port = free_port()
    provider = subprocess.Popen([sys.executable, os.path.join(ROOT, "demo", "forgetful_provider.py"),
                                 "--port", str(provider_port)], stdout=subprocess.DEVNULL)
    envoys = Envoys()
    try:
        wait_http(provider_port, "/")
        now = int(time.time())
        pol = policy(now - 3600)
        a = envoys.start("a", provider_port, pol)
        b = envoys.start("b", provider_port, pol)
        plain = envoys.start("plain", provider_port, pol, with_filter=False)

        def seen():
            return json.loads(request(provider_port, "POST", "/admin/seen")[2])

        def register(via):
            st, _, body = request(via, "POST", "/register", json.dumps({"redirect_uris": [REDIRECT]}),
                                  {"content-type": "application/json"})
            return st, json.loads(body)

        def authorize_and_token(via_auth, via_token, client_id):
            q = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT})
            st, h, _ = request(via_auth, "GET", "/authorize?" + q)
            code = parse_qs(urlsplit(h.get("location", "")).query).get("code", [""])[0]
            st2, _, body = request(via_token, "POST", "/token", {
                "grant_type": "authorization_code", "code": code, "client_id": client_id})
            return st, st2, json.loads(body) if st2 == 200 else body

        def refresh(via, client_id, rt):
            return request(via, "POST", "/token", {"grant_type": "refresh_token", "refresh_token": rt,
                                                    "client_id": client_id})

        # 1. Registration through A: signed envelope, injected expiry.
        st, reg = register(a)
        cid = reg.get("client_id", "")
        check("registration through A is signed", st == 201 and cid.startswith("mog1.k1."), reg)
        check("client_secret_expires_at = issued_at + client_max_age",
              reg.get("client_secret_expires_at") == reg.get("client_id_issued_at", 0) + MAX_AGE, reg)

        # 2. Authorize through B, code exchange through B: B verifies A's envelope, no shared state.
        st_auth, st_tok, tokens = authorize_and_token(b, b, cid)
        check("B unwraps A's envelope at /authorize and /token", st_auth == 302 and st_tok == 200,
              (st_auth, st_tok))
        ids = seen()["token_client_ids"]
        check("the provider never sees an envelope", ids and not any(i.startswith("mog1.") for i in ids), ids)

        # 3. A young client is untouched, through both replicas.
        st, _, body = refresh(a, cid, tokens["refresh_token"])
        check("young client refreshes through A", st == 200, body)
        rt = json.loads(body)["refresh_token"]
        young_token = bearer({"client_id": "x", "iat": int(time.time())})
        st, _, _ = request(b, "POST", "/mcp", "{}", {"authorization": young_token, "content-type": "application/json"})
        check("young token reaches the MCP server", st == 200, st)

        # 4. Older than client_max_age: refused by the replica that did not register it.
        time.sleep(MAX_AGE + 1.5)
        before = seen()["paths"].get("/token", 0)
        st, h, body = refresh(b, cid, rt)
        err = json.loads(body).get("error") if body.startswith(b"{") else None
        check("old client gets 401 invalid_client at the token endpoint (replica B)",
              st == 401 and err == "invalid_client" and "no-store" in h.get("cache-control", ""), (st, body))
        check("...without the request reaching the provider", seen()["paths"].get("/token", 0) == before)
        st, h, body = request(a, "POST", "/revoke", {"token": rt, "client_id": cid})
        check("old client gets 401 invalid_client at the revocation endpoint (replica A)", st == 401, (st, body))
        old_token = bearer({"client_id": "x", "iat": int(time.time()) - MAX_AGE - 5})
        st, h, body = request(a, "POST", "/mcp", "{}", {"authorization": old_token, "content-type": "application/json"})
        wa = h.get("www-authenticate", "")
        check("old client's token gets 401 invalid_token with resource_metadata at the MCP endpoint",
              st == 401 and wa.startswith('Bearer error="invalid_token"') and "resource_metadata=" in wa, (st, wa))
        st, _, body = refresh(plain, cid, rt)
        check("control without the filter: the old client's request reaches the provider",
              seen()["paths"].get("/token", 0) == before + 1 and st != 401, (st, body))
        st, _, _ = request(plain, "POST", "/mcp", "{}", {"authorization": old_token, "content-type": "application/json"})
        check("control without the filter: the old token reaches the MCP server", st == 200, st)

        # 5. Registration epoch: clients registered before it are gone; a new one is fine.
        st, reg2 = register(a)
        cid2 = reg2["client_id"]
        _, _, tok2 = authorize_and_token(a, a, cid2)
        time.sleep(1.1)
        epoch = int(time.time())
        envoys.stop("a")
        envoys.stop("b")
        pol = policy(epoch)
        a = envoys.start("a2", provider_port, pol)
        b = envoys.start("b2", provider_port, pol)
        st, _, body = refresh(b, cid2, tok2["refresh_token"])
        check("client registered before the epoch gets 401 invalid_client", st == 401, (st, body))
        st, reg3 = register(a)
        cid3 = reg3["client_id"]
        _, st_tok, tok3 = authorize_and_token(b, a, cid3)
        st, _, body = refresh(b, cid3, tok3["refresh_token"]) if st_tok == 200 else (st_tok, {}, b"")
        check("client registered after the epoch works through both replicas", st == 200, (st, body))
        pre_epoch_token = bearer({"azp": "x", "iat": epoch - 1})
        st, _, _ = request(b, "GET", "/mcp", None, {"authorization": pre_epoch_token})
        check("token issued before the epoch gets 401 at the MCP endpoint", st == 401, st)

        # 6. A provider that hands back an old registration: refused, never fresh.
        request(provider_port, "POST", "/admin/dedup?age=86400")
        st, body = register(a)
        check("stale registration answer becomes 400 invalid_client_metadata",
              st == 400 and body.get("error") == "invalid_client_metadata", (st, body))
        request(provider_port, "POST", "/admin/dedup")

        # 7. A forged envelope (age rewritten) is refused.
        parts = cid3.split(".")
        parts[2] = str(int(parts[2]) + 1000)
        forged = ".".join(parts)
        st, _, _ = refresh(a, forged, "x")
        check("forged envelope gets 401 invalid_client", st == 401, st)

        # 8. Log lines: one per decision, no client_id or token.
        logs = "".join(open(p).read() for p in envoys.logs.values())
        check("decisions are logged", "request answered by the filter" in logs and "reason=client_max_age" in logs
              and "reason=registration_epoch" in logs)
        leaked = [s for s in (cid, cid2, cid3, rt, parts[3]) if s and s in logs]
        check("no client_id, envelope or token in Envoy's logs", not leaked, leaked)
    finally:
        envoys.stop_all()
        provider.terminate()
        provider.wait(timeout=5)
    print(f"{len(failures)} failed" if failures else "lifecycle: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
