#!/usr/bin/env bash
# Without libprotobuf-c-dev, a build must stop with an error that names the package to
# install. The system headers are hidden from clang (-nostdinc) and every place that includes
# <protobuf-c/protobuf-c.h> is compiled: the CProtobufC shim (what Swift imports), the
# CProtobuf umbrella header, and a generated C file (through the target's missing-library
# header path). Each must fail with the message; with the system headers, the generated file
# must still compile (the stand-in header passes the real one through).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
clang=$(command -v clang)
want='libprotobuf-c headers not found: install the Debian/Ubuntu package libprotobuf-c-dev'
cp_inc=(-I Sources/CProtobuf/missing-library -I Sources/CProtobuf/include)
status=0

expect_missing() {  # label, clang arguments...
  local label=$1; shift
  local output
  if output=$("$clang" -fsyntax-only -nostdinc "$@" 2>&1); then
    echo "FAIL $label: compiled without the system headers" >&2; status=1
  elif grep -qF "error: \"$want" <<<"$output" || grep -qF "error: $want" <<<"$output"; then
    echo "ok   $label: names libprotobuf-c-dev"
  else
    echo "FAIL $label: the error does not name libprotobuf-c-dev:" >&2; echo "$output" >&2; status=1
  fi
}

expect_missing "CProtobufC/shim.h" -x c Sources/CProtobufC/shim.h
expect_missing "CProtobuf/include/CProtobuf.h" -x c "${cp_inc[@]}" Sources/CProtobuf/include/CProtobuf.h
expect_missing "CProtobuf/endpointmux_v1.pb-c.c" "${cp_inc[@]}" Sources/CProtobuf/endpointmux_v1.pb-c.c

if "$clang" -fsyntax-only "${cp_inc[@]}" Sources/CProtobuf/endpointmux_v1.pb-c.c; then
  echo "ok   with the system headers, the generated C compiles through the stand-in header"
else
  echo "FAIL the generated C does not compile with the system headers" >&2; status=1
fi
exit $status
