#!/usr/bin/env bash
# broker-load: issue 8's load acceptance against a release netbroker in its own process:
# CLIENTS connections × CYCLES listen/accept/connect/close cycles (one byte through each
# connection), an identity probe every 20 ms throughout (each must be answered within
# 100 ms), and the broker's fd count (/proc/PID/fd) back to its start afterwards.
#
#   scripts/broker-load.sh [CLIENTS [CYCLES]]     # default 64 200
#   BROKER_BIN=.build/release scripts/broker-load.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
clients=${1:-64}
cycles=${2:-200}
if [ -z "${BROKER_BIN:-}" ]; then
  swift build -c release --product netbroker >/dev/null && swift build -c release --product muxctl >/dev/null \
    || { echo "build failed"; exit 1; }
  BROKER_BIN="$root/.build/release"
fi
work=$(mktemp -d /tmp/broker-load.XXXXXX)
socket="$work/netbroker.sock"
ulimit -n 65536 2>/dev/null || true
"$BROKER_BIN/netbroker" --socket "$socket" --allow 'listen=tcp:127.0.0.1:*' --allow 'connect=tcp:127.0.0.1:*' \
  >"$work/netbroker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 200); do [ -S "$socket" ] && grep -q serving "$work/netbroker.log" && break; sleep 0.05; done
fds() { ls "/proc/$broker/fd" | wc -l; }
before=$(fds)
"$BROKER_BIN/muxctl" broker --socket "$socket" load "$clients" "$cycles"
load=$?
after=$(fds)
for _ in $(seq 1 100); do [ "$after" = "$before" ] && break; sleep 0.02; after=$(fds); done
echo "broker fds: $before before, $after after"
if [ $load = 0 ] && [ "$after" = "$before" ]; then echo "broker-load: passed"; else echo "broker-load: FAILED"; exit 1; fi
