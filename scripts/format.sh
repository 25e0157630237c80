#!/usr/bin/env bash
# Formats the Swift sources with the toolchain's swift-format and the repository's
# .swift-format configuration (4-space indent, 120 columns, the rules the code already follows).
#   scripts/format.sh           rewrites Sources Tests Examples Benchmarks in place
#   scripts/format.sh --check   fails on any difference or lint finding (swift format lint --strict)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dirs=(Sources Tests Examples Benchmarks)
if [ "${1:-}" = "--check" ]; then
  swift format lint --strict --recursive --parallel "${dirs[@]}"
  echo "format: clean"
else
  swift format format --in-place --recursive --parallel "${dirs[@]}"
fi
