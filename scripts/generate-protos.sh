#!/usr/bin/env bash
# Regenerates Sources/CProtobuf from Protos/*.proto with Debian's protoc-c.
# Usage: scripts/generate-protos.sh [--check]
#   --check  regenerate into a temporary folder and fail if the committed output differs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v protoc-c >/dev/null || { echo "protoc-c missing: apt-get install protobuf-c-compiler" >&2; exit 2; }
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
protoc-c --proto_path="$root/Protos" --c_out="$out" "$root"/Protos/*.proto
if [ "${1:-}" = "--check" ]; then
  status=0
  for f in "$out"/*.pb-c.c; do cmp -s "$f" "$root/Sources/CProtobuf/$(basename "$f")" || { echo "stale: Sources/CProtobuf/$(basename "$f")" >&2; status=1; }; done
  for f in "$out"/*.pb-c.h; do cmp -s "$f" "$root/Sources/CProtobuf/include/$(basename "$f")" || { echo "stale: Sources/CProtobuf/include/$(basename "$f")" >&2; status=1; }; done
  [ $status -eq 0 ] && echo "generated protobuf-c code is up to date"
  exit $status
fi
cp "$out"/*.pb-c.c "$root/Sources/CProtobuf/"
cp "$out"/*.pb-c.h "$root/Sources/CProtobuf/include/"
echo "regenerated Sources/CProtobuf"
