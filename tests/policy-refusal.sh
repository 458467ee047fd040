#!/usr/bin/env bash
# A broken policy makes the real Envoy refuse the filter, and the message names the field.
# Runs `envoy --mode validate` on envoy/envoy.yaml with one field broken at a time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
envoy="$root/.venv/bin/envoy"
wasm="$root/target/wasm32-wasip1/release/mcp_oauth_guard.wasm"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

base="$tmp/envoy.yaml"
sed "s#/etc/envoy/mcp_oauth_guard.wasm#$wasm#" "$root/envoy/envoy.yaml" > "$base"

failed=0
# A good policy validates.
if "$envoy" --mode validate -c "$base" --use-dynamic-base-id > "$tmp/ok.log" 2>&1; then
  echo "PASS shipped envoy/envoy.yaml validates"
else
  echo "FAIL shipped envoy/envoy.yaml does not validate"; tail -5 "$tmp/ok.log"; failed=1
fi

# Each case: a sed expression that breaks the policy, and the text the refusal must contain.
cases=(
  's/preset: auto/preset: okta2/|field `providers[0].preset`: unknown preset `okta2`'
  's/token: \[\/token\]/tokn: [\/token]/|field `providers[0].endpoints.tokn` (line 6): unknown field `tokn`, expected one of `token`, `revocation`, `registration`, `authorization`'
  's/revocation: \[\/revoke\]/revocation: \/revoke/|field `providers[0].endpoints.revocation`'
  's/registration: \[\/register\]/registration: [\/token]/|field `providers[0].endpoints.registration[0]`: path `/token` is already the token endpoint'
  's/version: 1/version: 7/|field `version`: version 7 is not supported'
  's#authorization: \[/authorize\]#&\n                        lifecycle: {client_max_age: 30x}#|field `providers[0].lifecycle.client_max_age`: `30x`: unknown unit `x`'
  's#authorization: \[/authorize\]#&\n                        lifecycle: {registration_epoch: "2099-01-01T00:00:00Z"}#|field `providers[0].lifecycle.registration_epoch`: `2099-01-01T00:00:00Z` is more than 24 hours in the future'
  's#authorization: \[/authorize\]#&\n                        lifecycle: {client_max_age: 30d, sign_client_ids: true}#|field `providers[0].lifecycle.signing_keys`: `sign_client_ids` is on but no signing key is given'
)
for case in "${cases[@]}"; do
  expr="${case%%|*}"; want="${case#*|}"
  sed "$expr" "$base" > "$tmp/bad.yaml"
  if "$envoy" --mode validate -c "$tmp/bad.yaml" --use-dynamic-base-id > "$tmp/bad.log" 2>&1; then
    echo "FAIL Envoy accepted a broken policy ($expr)"; failed=1
  # The line of the field is part of the message; a case without `(line N)` ignores it.
  elif grep -qF "policy refused: $want" "$tmp/bad.log" \
    || sed 's/ (line [0-9]*)//' "$tmp/bad.log" | grep -qF "policy refused: $want"; then
    echo "PASS refused: $want"
  else
    echo "FAIL refusal without the expected message: $want"; grep -i "refused\|error" "$tmp/bad.log" | tail -3; failed=1
  fi
done
exit "$failed"
