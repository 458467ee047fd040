#!/usr/bin/env bash
# The demo: Envoy with mcp-oauth-guard in front of a provider that forgets clients.
# Shows the provider's raw answer next to what the client receives, then (when the
# end-to-end packages are installed) a real MCP SDK client recovering on its own.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
./scripts/bootstrap.sh
python3 demo/run_demo.py "$@"
if [ -f tests/mcp-client/story.mjs ] && [ -d tests/mcp-client/node_modules ]; then
  printf '\n==> a real MCP client (official TypeScript SDK) against oidc-provider\n'
  node tests/mcp-client/story.mjs
fi
