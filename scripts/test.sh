#!/usr/bin/env bash
# Runs every test of mcp-oauth-guard. Installs what it needs first (scripts/bootstrap.sh).
# Quick mode for development: SKIP_E2E=1 runs only the Rust and Python unit tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "bootstrap"
./scripts/bootstrap.sh

# Debian tools some steps use: wrk (benchmark smoke), curl (HTTP/2 in the differential run),
# docker-compose (checks docker-compose.yml). Installed when missing and we may; a step whose
# tool is still missing says so and is skipped.
missing_pkgs=()
for tool_pkg in wrk:wrk curl:curl docker-compose:docker-compose; do
  command -v "${tool_pkg%%:*}" >/dev/null 2>&1 || missing_pkgs+=("${tool_pkg#*:}")
done
if [ "${#missing_pkgs[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  step "installing ${missing_pkgs[*]} (Debian packages)"
  (apt-get install -y -qq "${missing_pkgs[@]}" >/dev/null 2>&1 || \
   { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing_pkgs[@]}" >/dev/null 2>&1; }) \
   || echo "could not install ${missing_pkgs[*]}" >&2
fi

step "format and lints (native and wasm32-wasip1, warnings denied)"
cargo fmt --all --check
cargo clippy --quiet --all-targets -- -D warnings
cargo clippy --quiet --release --target wasm32-wasip1 -p mcp-oauth-guard -- -D warnings

step "core unit tests"
cargo test --quiet

step "replay harness self-test"
python3 -m unittest discover -s tests/replay -p 'test_*.py' 2>&1 | tail -3

if [ "${SKIP_E2E:-0}" = 1 ]; then
  echo "SKIP_E2E=1: end-to-end tests skipped"
  exit 0
fi

step "shipped Envoy config validates; broken policies are refused with the field named"
./tests/policy-refusal.sh

step "policy updates over LDS: good ones apply, broken ones are rejected and the old one stays"
python3 tests/policy-reload/run.py

step "docker-compose.yml"
if command -v docker-compose >/dev/null 2>&1; then
  docker-compose config --quiet && echo "docker-compose config: OK"
else
  echo "docker-compose is not installable here; compose file not validated" >&2
fi

step "replay of provider fixtures through a real Envoy"
./tests/replay.sh tests/fixtures/providers
./tests/replay.sh tests/fixtures/more-providers
# The shared fixtures beside a development checkout, when present (the repository holds a copy).
if [ -d "$root/../shared/fixtures/providers" ]; then
  ./tests/replay.sh "$root/../shared/fixtures/providers"
else
  echo "(no ../shared/fixtures beside this checkout; the copy in tests/fixtures was replayed)"
fi

step "differential: generated answers through Envoy with and without the filter"
python3 tests/differential/run.py

step "soak: shipped config vs no filter under the same mixed load"
python3 tests/soak/run.py

step "client lifecycle through two Envoy replicas (max age, epoch, signed client_ids)"
python3 tests/lifecycle/run.py

step "URL identity (issue 6): field cases 7-12 through Envoy, with a no-filter control"
./tests/url-identity/run.sh

step "observe mode: decisions logged and counted, traffic unchanged"
python3 tests/observe/run.py

step "secrets in logs: every fixture at trace level, filter log lines searched for secrets"
./tests/log-secrets.sh

step "benchmark smoke: four listeners answer as designed (timings reported, never asserted)"
if command -v wrk >/dev/null 2>&1; then
  ./bench/run.sh --smoke
else
  echo "wrk is not installed and could not be: benchmark smoke skipped" >&2
fi

step "demo, checked: every provider shape and the controls"
python3 demo/run_demo.py --check

if [ -d tests/mcp-client ] && [ -f tests/mcp-client/package.json ]; then
  step "real MCP clients (TypeScript and Python SDKs) against oidc-provider through Envoy"
  node --test --test-concurrency=1 tests/mcp-client/
fi

step "all tests passed"
