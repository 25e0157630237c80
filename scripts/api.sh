#!/usr/bin/env bash
# The public API listing (api/public-api.txt): `scripts/api.sh` regenerates it,
# `scripts/api.sh --check` fails when the public API differs from the committed listing
# (scripts/test.sh runs the check). Declarations that are package, internal or @_spi are not
# listed: they are not API.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scratch="$root/.build-api"
graphs="$scratch/x86_64-unknown-linux-gnu/symbolgraph"
rm -rf "$graphs"
mkdir -p "$scratch"
# SwiftPM also tries the test modules and fails on them; the library modules' graphs are what count.
swift package --scratch-path "$scratch" dump-symbol-graph --minimum-access-level public >"$scratch/dump-symbol-graph.log" 2>&1 || true
for module in EndpointMux LegacyAdapters LegacyAdaptersNIO EndpointMuxServiceLifecycle; do
  [ -f "$graphs/$module.symbols.json" ] || { cat "$scratch/dump-symbol-graph.log" >&2; echo "error: no symbol graph for $module" >&2; exit 1; }
done
current=$(python3 scripts/api.py "$graphs")
if [ "${1:-}" = "--check" ]; then
  if ! diff -u api/public-api.txt <(printf '%s\n' "$current"); then
    echo "error: the public API changed; if intended, run scripts/api.sh and commit api/public-api.txt" >&2
    exit 1
  fi
  echo "public API unchanged ($(grep -c . api/public-api.txt) declarations)"
else
  printf '%s\n' "$current" > api/public-api.txt
  echo "wrote api/public-api.txt ($(grep -c . api/public-api.txt) declarations)"
fi
