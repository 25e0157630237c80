#!/usr/bin/env bash
# Builds Examples/getting-started — a package of its own that depends on the SDK by path,
# as an adopter's package would — from a copy outside the repository (its dependency path
# pointed at this checkout), in its own scratch directory, and runs it: it starts a
# ServiceServer on a temporary socket, probes it, sends one frame, prints OK and exits 0.
# (scripts/check-examples-public.sh builds the docs' other examples in the same package.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch="$root/.build-getting-started"
outside="${TMPDIR:-/tmp}/endpointmux-getting-started"
rm -rf "$outside"
mkdir -p "$outside"
cp -RL "$root/Examples/getting-started/Package.swift" "$root/Examples/getting-started/Sources" "$outside/"
sed -i "s|path: \"../..\"|path: \"$root\"|" "$outside/Package.swift"
grep -q "path: \"$root\"" "$outside/Package.swift" || { echo "getting-started: dependency path not rewritten" >&2; exit 1; }
echo "getting-started: building the adopter package at $outside (depends on $root by path)"
# No build-manifest caching: it does not notice files added to or removed from the SDK (a
# path dependency), and a later build fails with "missing inputs".
swift build --package-path "$outside" --scratch-path "$scratch" \
  --disable-build-manifest-caching --product getting-started
output=$("$scratch/debug/getting-started")
echo "$output"
case "$output" in
  OK:*) echo "getting-started: passed" ;;
  *) echo "getting-started: unexpected output" >&2; exit 1 ;;
esac
