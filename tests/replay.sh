#!/usr/bin/env bash
# Replays provider fixtures through Envoy with and without the filter.
# Usage: tests/replay.sh DIR [--policy FILE] [--verbose] [--keep] [--no-filter-control]
# See tests/replay/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/replay/replay.py" "$@"
