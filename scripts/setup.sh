#!/usr/bin/env bash
# Installs what EndpointMux needs on a fresh Debian/Ubuntu machine, skipping what is there:
#   - system packages: libprotobuf-c-dev protobuf-c-compiler (codec), b3sum (BLAKE3 oracle
#     for tests), python3-venv (interop peers);
#   - with --interop: a venv at .venv-interop holding running-process==4.10.17 from PyPI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

need=()
for pkg in libprotobuf-c-dev protobuf-c-compiler b3sum python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ "${1:-}" = "--interop" ]; then
  venv="$root/.venv-interop"
  if ! "$venv/bin/python3" -c 'import running_process_service' >/dev/null 2>&1; then
    echo "setup: creating $venv with running-process==4.10.17"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check running-process==4.10.17
  fi
fi
