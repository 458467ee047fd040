#!/usr/bin/env bash
# Secrets-in-logs check (ENVOY-NOTES I12 / R10): replays every provider fixture through Envoy
# with the filter at trace log level, then searches the filter's log lines for every secret the
# fixtures carry: EXAMPLE_* values (refresh tokens, client secrets, codes, client ids ...), the
# Authorization credentials, the decoded Basic id and secret, base64 / base64url of "id:secret",
# client_id / secret / token / code parameters of paths and bodies, each also percent-encoded.
#
# Checked strictly: every line of Envoy's `wasm` component (the filter's own log lines and
# Envoy's lines about the VM). Envoy's other components at trace level print whole header maps,
# Authorization included: those hits are counted and shown as the control that proves the
# secrets were in the traffic and the search finds them, and they are a reason to never run a
# production Envoy at debug or trace level.
#
#   tests/log-secrets.sh [FIXTURE_DIR...]   (default: tests/fixtures/providers and, when
#                                            present, ../shared/fixtures/providers)
#   LOG_SECRETS_CANARY=invalid_client tests/log-secrets.sh   # must fail: proves the search works
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
  dirs=(tests/fixtures/providers)
  [ -d "$root/../shared/fixtures/providers" ] && dirs+=("$root/../shared/fixtures/providers")
fi

status=0
for dir in "${dirs[@]}"; do
  out="$(mktemp)"
  # The replay's own verdicts are tests/replay.sh's business; here only its logs matter.
  python3 tests/replay/replay.py "$dir" --log-level trace --keep >"$out" 2>&1 || true
  kept="$(sed -n 's/^note: kept \(.*\) (envoy.json.*/\1/p' "$out" | tail -1)"
  summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" || true)"
  rm -f "$out"
  if [ -z "$kept" ] || [ ! -f "$kept/envoy.log" ]; then
    echo "log-secrets: $dir: the replay left no Envoy log" >&2
    status=1
    continue
  fi
  set +e
  python3 - "$dir" "$kept/envoy.log" "$summary" <<'PY'
import base64
import json
import re
import sys
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

fixture_dir, log_path, summary = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
SECRET_PARAMS = {"client_id", "client_secret", "refresh_token", "code", "code_verifier",
                 "client_assertion", "access_token", "token", "registration_access_token"}
NOT_SECRET = re.compile(r"EXAMPLE_(REALM|TENANT)")

secrets: set[str] = set()
for path in sorted(fixture_dir.glob("*.json")):
    try:
        req = json.loads(path.read_text())["request"]
    except (ValueError, KeyError):
        continue
    text = json.dumps(req)
    secrets.update(s for s in re.findall(r"EXAMPLE_[A-Z0-9_]+", text) if not NOT_SECRET.match(s))
    headers = {k.lower(): v for k, v in (req.get("headers") or {}).items()}
    auth = headers.get("authorization", "")
    if " " in auth:
        scheme, credentials = auth.split(" ", 1)
        secrets.add(credentials.strip())
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(credentials).decode().partition(":")
                secrets.update({user, password})
            except ValueError:
                pass
    pairs = parse_qsl(urlsplit(req.get("path", "")).query)
    if "json" not in headers.get("content-type", ""):
        pairs += parse_qsl(req.get("body") or "")
    secrets.update(v for k, v in pairs if k in SECRET_PARAMS)
for s in list(secrets):
    if s.startswith("EXAMPLE_CLIENT_ID"):
        for secret in [x for x in secrets if x.startswith("EXAMPLE_CLIENT_SECRET")]:
            raw = f"{s}:{secret}".encode()
            secrets.add(base64.b64encode(raw).decode())
            secrets.add(base64.urlsafe_b64encode(raw).decode().rstrip("="))
# A canary that the filter does log (e.g. "invalid_client") proves the check can fail.
secrets |= {c for c in [__import__("os").environ.get("LOG_SECRETS_CANARY", "")] if c}
secrets = {s for s in secrets if len(s) >= 6}
secrets |= {quote(s, safe="") for s in secrets}

lines = log_path.read_text(errors="replace").splitlines()
wasm = [l for l in lines if "][wasm]" in l]
filter_lines = [l for l in wasm if "mcp-oauth-guard:" in l]
leaks = [(s, l) for l in wasm for s in secrets if s in l]
envoy_hits = sum(1 for l in lines if "][wasm]" not in l and any(s in l for s in secrets))

print(f"log-secrets: {fixture_dir}: {len(secrets)} secret strings; replay: {summary or '?'}; "
      f"{len(lines)} log lines at trace, {len(wasm)} from the wasm component "
      f"({len(filter_lines)} written by the filter); control: {envoy_hits} lines of Envoy's "
      f"own trace output carry a secret")
problems = []
if not filter_lines:
    problems.append("no filter log lines: the check would prove nothing")
if not any("answer rewritten" in l for l in filter_lines):
    problems.append("no rewrite was logged: the check would miss the decision lines")
if envoy_hits == 0:
    problems.append("control failed: no secret seen anywhere in the trace log")
for secret, line in leaks[:20]:
    problems.append(f"secret {secret[:4]}... in: {line[:200]}")
if leaks:
    problems.append(f"{len(leaks)} secret occurrences in wasm log lines")
for p in problems:
    print(f"  FAIL {p}")
sys.exit(1 if problems else 0)
PY
  rc=$?
  set -e
  [ "$rc" -eq 0 ] || status=1
  rm -rf "$kept"
done
exit "$status"
