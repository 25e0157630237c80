#!/usr/bin/env bash
# Builds Examples/getting-started — a package of its own that depends on the SDK by path,
# as an adopter's package would — in its own scratch directory, and runs it: it starts a
# ServiceServer on a temporary socket, probes it, sends one frame, prints OK and exits 0.
# The same package builds the docs' other examples from outside the SDK (only its public
# API is visible there) and runs their self-tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch="$root/.build-getting-started"
# No build-manifest caching: it does not notice files added to or removed from the SDK (a
# path dependency), and a later build fails with "missing inputs".
if ! swift build --package-path "$root/Examples/getting-started" --scratch-path "$scratch" \
    --disable-build-manifest-caching; then
  echo "getting-started: the examples do not build against the SDK's public API (errors above)" >&2
  exit 1
fi
output=$("$scratch/debug/getting-started")
echo "$output"
case "$output" in
  OK:*) ;;
  *) echo "getting-started: unexpected output" >&2; exit 1 ;;
esac
for example in async-example nio-bootstrap-example nio-async-channel-example; do
  timeout 120 "$scratch/debug/$example" --self-test
done
echo "getting-started: passed"
