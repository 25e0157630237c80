#!/usr/bin/env bash
# The main demo on a fresh machine: installs what is missing, builds muxctl and kvd, and
# runs `muxctl demo` (kvd, a legacy daemon retrofitted with EndpointMux, talking to a
# legacy client, a prober, a framed client and an fd-passing control client).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
swift build -c release --product kvd
swift build -c release --product muxctl
exec .build/release/muxctl demo "$@"
