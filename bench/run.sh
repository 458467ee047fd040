#!/usr/bin/env bash
# Benchmark: mcp-oauth-guard vs no filter vs an equivalent Lua filter in one Envoy.
#   bench/run.sh [--smoke] [options]    (bench/run.py --help for the options)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/run.py" "$@"
