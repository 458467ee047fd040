"""`mode: observe` through a real Envoy: the provider's answers reach the client byte for byte
as without the filter, and every decision the filter would have made is logged and counted.

Starts the forgetful provider and one Envoy (the shipped envoy/envoy.yaml with local addresses
and `mode: observe` added to its policy) on 127.0.0.1, and stops both at the end.
"""

import json
import os
import subprocess
import sys
import tempfile
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "demo"))
from run_demo import ENVOY, REDIRECT, free_port, local_envoy_config, request, wait_http  # noqa: E402


def main():
    failures = []

    def check(name, ok, detail=""):
        print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
        if not ok:
            failures.append(name)

    provider, listen, admin = free_port(), free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="guard-observe-")
    config = local_envoy_config(provider, listen, admin).replace(
        "                          authorization: [/authorize]\n",
        "                          authorization: [/authorize]\n                    mode: observe\n")
    assert "mode: observe" in config
    cfg = os.path.join(tmp, "envoy.yaml")
    with open(cfg, "w") as f:
        f.write(config)
    log_path = os.path.join(tmp, "envoy.log")
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "demo", "forgetful_provider.py"),
                               "--port", str(provider)], stdout=subprocess.DEVNULL)]
    with open(log_path, "w") as log:
        procs.append(subprocess.Popen([ENVOY, "-c", cfg, "--concurrency", "1", "--use-dynamic-base-id",
                                       "-l", "info"], stdout=subprocess.DEVNULL, stderr=log))
    try:
        if not (wait_http(provider, "/") and wait_http(admin, "/ready")):
            print(open(log_path).read()[-3000:])
            return 2
        st, _, body = request(listen, "POST", "/register", json.dumps({"redirect_uris": [REDIRECT]}),
                              {"content-type": "application/json"})
        cid = json.loads(body)["client_id"]
        request(provider, "POST", "/admin/forget?" + urlencode({"client_id": cid}))
        form = {"grant_type": "refresh_token", "refresh_token": "r", "client_id": cid}
        raw = request(provider, "POST", "/token", form)
        via = request(listen, "POST", "/token", form)
        check("the client receives the provider's own answer", via[0] == raw[0] and via[2] == raw[2],
              (via[0], via[2][:80]))
        log = open(log_path).read()
        check("the decision is logged as observed",
              "observe: would rewrite the token answer: status=400 error=invalid_request -> status=401 invalid_client" in log)
        check("nothing was rewritten", "answer rewritten" not in log)
        _, _, stats = request(admin, "GET", "/stats?filter=mcp_oauth_guard")
        stats = dict(line.split(": ", 1) for line in stats.decode().splitlines() if ": " in line)
        check("the observed decision is counted",
              stats.get("wasmcustom.mcp_oauth_guard.observe.would_act") == "1"
              and stats.get("wasmcustom.mcp_oauth_guard.provider.oauth.rewrite.invalid_client") == "0", stats)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
    print(f"{len(failures)} failed" if failures else "observe: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
