#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, checks the committed
# protobuf-c output is fresh, builds the release muxctl the interop tests drive, and runs
# every test (unit, socket, fd-passing and interop against running-process from PyPI); then
# the adopter's view: the getting-started package built by path, the missing-library message,
# the compiled examples' self-tests and the DocC catalogs (warnings are errors).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh --interop
scripts/generate-protos.sh --check
# The public API must match the committed listing (api/public-api.txt).
scripts/api.sh --check
# The sources follow .swift-format (scripts/format.sh rewrites them).
scripts/format.sh --check
swift build -c release --product muxctl
export ENDPOINTMUX_MUXCTL="$root/.build/release/muxctl"
export ENDPOINTMUX_PYTHON="$root/.venv-interop/bin/python3"
swift build --build-tests
# Serial: fd-leak checks count /proc/self/fd, which parallel tests (and child processes) would
# disturb. The fd-counting suites (LegacyAdaptersTests) run in a process of their own, so the
# sockets of other targets' tests, which Swift Testing runs alongside, cannot move the counts.
if [ $# -gt 0 ]; then
  swift test --skip-build --no-parallel "$@"
else
  swift test --skip-build --no-parallel --filter LegacyAdaptersTests
  swift test --skip-build --no-parallel --skip LegacyAdaptersTests
  scripts/check-missing-protobuf-c.sh
  scripts/getting-started.sh
  scripts/check-examples-public.sh  # the docs' examples, built from outside the SDK; their self-tests
  scripts/docs.sh  # the DocC catalogs and every public doc comment: warnings are errors
fi
