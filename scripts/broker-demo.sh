#!/usr/bin/env bash
# broker-demo: netbroker lets a daemon with no network of its own serve one.
#
#   scripts/broker-demo.sh            # builds netbroker and muxctl (debug) first
#   BROKER_BIN=.build/release scripts/broker-demo.sh
#
# Steps: the broker answers an identity probe; an echo daemon started in an empty network
# namespace (unshare --net) asks the broker to listen on tcp:127.0.0.1:0, accepts through
# it and serves a client on the host's loopback; a denied request (-32001); a refused
# connect (-32003 ECONNREFUSED); a pair connect acknowledged by the acceptor.
# Last line: "broker-demo: N of N steps passed".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -z "${BROKER_BIN:-}" ]; then
  swift build --product netbroker >/dev/null && swift build --product muxctl >/dev/null || { echo "build failed"; exit 1; }
  BROKER_BIN="$root/.build/debug"
fi
netbroker="$BROKER_BIN/netbroker"
muxctl="$BROKER_BIN/muxctl"
work=$(mktemp -d /tmp/broker-demo.XXXXXX)
socket="$work/netbroker.sock"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
total=0
step() {  # step NAME STATUS DETAIL
  total=$((total + 1))
  if [ "$2" = 0 ]; then
    passed=$((passed + 1))
    echo "[$total] ok    $1${3:+ — $3}"
  else
    echo "[$total] FAIL  $1${3:+ — $3}"
  fi
}

# Waits up to 10 s for a line matching $2 in file $1; prints it.
wait_for_line() {
  for _ in $(seq 1 200); do
    if grep -q -- "$2" "$1" 2>/dev/null; then grep -m1 -- "$2" "$1"; return 0; fi
    sleep 0.05
  done
  return 1
}

echo "== netbroker on $socket"
"$netbroker" --socket "$socket" --allow 'listen=tcp:127.0.0.1:*' --allow 'connect=tcp:127.0.0.1:*' --allow pair \
  >"$work/netbroker.log" 2>&1 &
pids+=($!)
wait_for_line "$work/netbroker.log" "serving" >/dev/null
cat "$work/netbroker.log"

# 1. The broker's socket answers identity probes (a supervisor can verify it).
out=$("$muxctl" probe --socket "$socket" --timeout 5000 2>&1); status=$?
step "identity probe on the broker's socket" $status "$(echo "$out" | head -1)"

# 2. An echo daemon in an empty network namespace serves the host through the broker.
isolation="unshare --net"
if ! unshare --net true 2>/dev/null; then
  isolation=""
  echo "note: unshare --net is not permitted here: SKIPPING the network-namespace isolation;" \
       "the echo daemon runs in the host's namespace"
fi
if [ -n "$isolation" ]; then
  # Inside the empty namespace the daemon cannot reach the host's loopback on its own.
  if unshare --net python3 -c 'import socket; socket.create_connection(("127.0.0.1", 9), timeout=1)' 2>/dev/null; then
    alone="the namespace has a network"
  else
    alone="no network inside the namespace (connect fails there)"
  fi
fi
$isolation "$muxctl" broker --socket "$socket" --echo listen tcp:127.0.0.1:0 accept >"$work/daemon.log" 2>&1 &
pids+=($!)
line=$(wait_for_line "$work/daemon.log" "^listen:") || line=""
port=${line##*:}
reply=""
if [ -n "$port" ]; then
  reply=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"hello from the host")
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode())
PY
)
fi
wait_for_line "$work/daemon.log" "^echo:" >/dev/null
cat "$work/daemon.log" | sed 's/^/    daemon: /'
[ "$reply" = "hello from the host" ]; status=$?
step "echo daemon ${isolation:+in an empty network namespace }served the host on tcp:127.0.0.1:$port" $status \
  "echoed \"$reply\"${alone:+; $alone}"

# 3. A denied request names the missing rule.
out=$("$muxctl" broker --socket "$socket" listen tcp:0.0.0.0:8080 2>&1); status=$?
echo "$out" | sed 's/^/    /'
[ $status = 2 ] && echo "$out" | grep -q -- "-32001 PermissionDenied"; step "listen on tcp:0.0.0.0:8080 denied" $?

# 4. A refused connect is -32003 ECONNREFUSED.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
out=$("$muxctl" broker --socket "$socket" connect "tcp:127.0.0.1:$closed" 2>&1); status=$?
echo "$out" | sed 's/^/    /'
[ $status = 2 ] && echo "$out" | grep -q -- "-32003 ECONNREFUSED"; step "connect to closed port $closed refused" $?

# 5. A pair connect is acknowledged once the acceptor took the other end.
"$muxctl" broker --socket "$socket" --echo listen pair accept >"$work/pair.log" 2>&1 &
pids+=($!)
line=$(wait_for_line "$work/pair.log" "^listen:") || line=""
id=$(echo "$line" | awk '{print $3}')
out=$("$muxctl" broker --socket "$socket" --timeout-ms 5000 connect "listener:$id" 2>&1); status=$?
accepted=$(wait_for_line "$work/pair.log" "^accept:") || accepted=""
echo "$out" | sed 's/^/    connector: /'
echo "$accepted" | sed 's/^/    acceptor:  /'
[ $status = 0 ] && [ -n "$accepted" ]; step "pair connect to listener $id acknowledged by the acceptor" $?

echo "broker-demo: $passed of $total steps passed"
[ "$passed" = "$total" ]
