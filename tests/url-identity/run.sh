#!/usr/bin/env bash
# URL identity (issue 6) end to end: BRIEF field cases 7-12 through a real Envoy, with a
# no-filter listener as the control. See tests/url-identity/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/run.py" "$@"
