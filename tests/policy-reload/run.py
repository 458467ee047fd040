"""A policy update delivered by LDS: a good one takes effect, a broken one is rejected by Envoy
and the listener keeps serving with the previous policy (no outage, no unfiltered window).

One Envoy with its listener from a file (path_config_source), in front of the forgetful
provider; everything on 127.0.0.1, stopped at the end.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "demo"))
from run_demo import ENVOY, REDIRECT, WASM, free_port, request, wait_http  # noqa: E402


def listener(port, policy):
    return f"""resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: public
  address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: public
        route_config:
          virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: provider}}}}]}}]
        http_filters:
        - name: mcp-oauth-guard
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
            config:
              name: mcp_oauth_guard
              allow_on_headers_stop_iteration: true
              failure_policy: FAIL_OPEN
              configuration: {{"@type": type.googleapis.com/google.protobuf.StringValue, value: {json.dumps(policy)}}}
              vm_config: {{runtime: envoy.wasm.runtime.v8, code: {{local: {{filename: {WASM}}}}}}}
        - name: envoy.filters.http.router
          typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"""


def policy(description):
    return ("version: 1\nproviders:\n  - name: oauth\n    endpoints:\n      token: [/token]\n"
            f"rewrite:\n  error_description: \"{description}\"\n")


def main():
    failures = []

    def check(name, ok, detail=""):
        print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
        if not ok:
            failures.append(name)

    tmp = tempfile.mkdtemp(prefix="guard-reload-")
    provider, listen, admin = free_port(), free_port(), free_port()
    lds = os.path.join(tmp, "lds.yaml")

    def publish(text):
        # Written beside and renamed, as LDS file sources require (an atomic move).
        with open(lds + ".tmp", "w") as f:
            f.write(text)
        os.replace(lds + ".tmp", lds)

    publish(listener(listen, policy("first policy")))
    bootstrap = os.path.join(tmp, "bootstrap.yaml")
    with open(bootstrap, "w") as f:
        f.write(f"""node: {{id: guard-test, cluster: guard-test}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
dynamic_resources:
  lds_config: {{path_config_source: {{path: {lds}}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: provider
    connect_timeout: 1s
    load_assignment: {{cluster_name: provider, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {provider}}}}}}}}}]}}]}}
""")
    log_path = os.path.join(tmp, "envoy.log")
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "demo", "forgetful_provider.py"),
                               "--port", str(provider)], stdout=subprocess.DEVNULL)]
    with open(log_path, "w") as log:
        procs.append(subprocess.Popen([ENVOY, "-c", bootstrap, "--concurrency", "1",
                                       "--use-dynamic-base-id", "-l", "info"],
                                      stdout=subprocess.DEVNULL, stderr=log))

    def stat(name):
        _, _, body = request(admin, "GET", "/stats?filter=" + name)
        for line in body.decode().splitlines():
            if line.startswith(name + ": "):
                return int(line.split(": ")[1])
        return None

    def stale_refresh():
        _, _, body = request(listen, "POST", "/register", json.dumps({"redirect_uris": [REDIRECT]}),
                             {"content-type": "application/json"})
        cid = json.loads(body)["client_id"]
        request(provider, "POST", "/admin/forget?" + urlencode({"client_id": cid}))
        return request(listen, "POST", "/token", {"grant_type": "refresh_token", "refresh_token": "r",
                                                   "client_id": cid})

    def wait_for(name, value):
        for _ in range(100):
            if stat(name) == value:
                return True
            time.sleep(0.1)
        return False

    try:
        if not (wait_http(provider, "/") and wait_http(admin, "/ready") and wait_for(
                "listener_manager.lds.update_success", 1)):
            print(open(log_path).read()[-3000:])
            return 2
        st, _, body = stale_refresh()
        check("first policy in force", st == 401 and b"first policy" in body, (st, body[:80]))

        publish(listener(listen, policy("second policy")))
        check("a good update is accepted", wait_for("listener_manager.lds.update_success", 2))
        time.sleep(0.5)
        st, _, body = stale_refresh()
        check("second policy in force", st == 401 and b"second policy" in body, (st, body[:80]))

        publish(listener(listen, policy("third policy").replace("name: oauth", "name: oauth\n    preset: nope")))
        check("a broken update is rejected", wait_for("listener_manager.lds.update_rejected", 1))
        log = open(log_path).read()
        check("the rejection names the field",
              "policy refused: field `providers[0].preset`" in log and "unknown preset `nope`" in log,
              [l for l in log.splitlines() if "refused" in l][-1:])
        st, _, body = stale_refresh()
        check("the listener keeps serving with the second policy",
              st == 401 and b"second policy" in body, (st, body[:80]))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
    print(f"{len(failures)} failed" if failures else "policy reload: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
