#!/usr/bin/env bash
# Runs a libFuzzer target with AddressSanitizer for N seconds (not part of CI).
#   scripts/fuzz.sh frameview 60   |   scripts/fuzz.sh control 60   |   scripts/fuzz.sh broker 60
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-frameview}; seconds=${2:-60}
cd "$root/Fuzz"
swift build -c release --product "fuzz-$target" --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address
mkdir -p "corpus-$target"
# Seeds (Fuzz/seeds-<target>/) and a dictionary (Fuzz/<target>.dict) where a target has them.
if [ -d "seeds-$target" ]; then cp -n "seeds-$target"/* "corpus-$target"/; fi
dictionary=(); if [ -f "$target.dict" ]; then dictionary=(-dict="$target.dict"); fi
SWIFT_BACKTRACE=enable=no ".build/release/fuzz-$target" "${dictionary[@]}" -max_total_time="$seconds" -max_len=4096 "corpus-$target"
