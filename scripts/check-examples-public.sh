#!/usr/bin/env bash
# The docs' examples (Examples/retrofit, async, nio-bootstrap, nio-async-channel) compile
# inside the SDK, where `package` declarations are visible too. This builds them again from
# outside — as targets of Examples/getting-started, a package that depends on the SDK by path
# (its Sources/<example> are symbolic links to Examples/<example>) — so an example that needs
# a declaration adopters cannot reach fails here; then runs their self-tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch="$root/.build-getting-started"
examples=(retrofit-example async-example nio-bootstrap-example nio-async-channel-example)
failed=()
mkdir -p "$scratch"
for example in "${examples[@]}"; do
  if ! swift build --package-path "$root/Examples/getting-started" --scratch-path "$scratch" \
      --disable-build-manifest-caching --product "$example" >"$scratch/$example.log" 2>&1; then
    grep -E "^/.*: error:" "$scratch/$example.log" | sort -u >&2 || true
    failed+=("$example")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "check-examples-public: ${failed[*]} do not build against the SDK's public API (errors above)" >&2
  exit 1
fi
for example in async-example nio-bootstrap-example nio-async-channel-example; do  # retrofit serves forever
  timeout 120 "$scratch/debug/$example" --self-test
done
echo "check-examples-public: ${#examples[@]} examples build from outside the SDK; self-tests passed"
