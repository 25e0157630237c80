#!/usr/bin/env bash
# Builds the DocC documentation of the four library modules with the toolchain's `docc`,
# treating warnings as errors (the package gains no dependency for it):
#   1. `swift package dump-symbol-graph` builds the package (debug, in .build unless
#      DOCS_SCRATCH_PATH says otherwise) and writes every module's symbol graph;
#   2. `docc convert` turns each module's catalog (Sources/<Module>/<Module>.docc) and its
#      symbol graphs into an archive in .build-docs/<Module>.doccarchive.
# `scripts/docs.sh --allow-source-warnings` reports the warnings instead of failing on them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
strict=1
[ "${1:-}" = "--allow-source-warnings" ] && strict=0
scratch=${DOCS_SCRATCH_PATH:-$root/.build}
out="$root/.build-docs"
docc=$(command -v docc || true)
[ -n "$docc" ] || docc="$(dirname "$(readlink -f "$(command -v swift)")")/docc"

rm -rf "$out"
mkdir -p "$out"
touch "$out/.stamp"
# It also tries the test modules, which fail to load unless the tests were built
# (`swift build --build-tests`); only the three library graphs matter, checked fresh below.
swift package --scratch-path "$scratch" dump-symbol-graph --skip-inherited-docs >"$out/symbolgraph.log" 2>&1 || true
graphs=$(ls -d "$scratch"/*/symbolgraph | head -n 1)
for module in EndpointMux LegacyAdapters LegacyAdaptersNIO EndpointMuxServiceLifecycle; do
  if [ ! "$graphs/$module.symbols.json" -nt "$out/.stamp" ]; then
    cat "$out/symbolgraph.log" >&2
    echo "docs: no fresh symbol graph for $module" >&2
    exit 1
  fi
done
failed=0
for module in EndpointMux LegacyAdapters LegacyAdaptersNIO EndpointMuxServiceLifecycle; do
  dir="$out/symbolgraphs/$module"
  mkdir -p "$dir"
  cp "$graphs/$module.symbols.json" "$dir/"
  cp "$graphs/$module@"*.symbols.json "$dir/" 2>/dev/null || true
  flags=()
  [ $strict = 1 ] && flags+=(--warnings-as-errors)
  echo "docs: $module"
  if ! "$docc" convert "Sources/$module/$module.docc" \
      --additional-symbol-graph-dir "$dir" \
      --fallback-display-name "$module" --fallback-bundle-identifier "org.endpointmux.$module" \
      --output-path "$out/$module.doccarchive" "${flags[@]}" >"$out/$module.log" 2>&1; then
    failed=1
  fi
  grep -E -A1 "^(warning|error):" "$out/$module.log" || true
  # Problems in the catalog itself (not in the sources' doc comments) always fail.
  own=$(awk '/^(warning|error):/ { problem = $0; if ((getline location) <= 0 || location !~ /^ *--> \.\.\/.*\.swift:/) print problem }' \
        "$out/$module.log")
  if [ -n "$own" ]; then
    echo "docs: $module: problems outside the sources' doc comments:" >&2
    echo "$own" >&2
    failed=1
  fi
done
if [ $failed = 1 ]; then
  echo "docs: docc reported problems (logs in .build-docs/*.log)" >&2
  exit 1
fi
echo "docs: built .build-docs/{EndpointMux,LegacyAdapters,LegacyAdaptersNIO,EndpointMuxServiceLifecycle}.doccarchive"
