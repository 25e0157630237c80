"""Drive running-process's own ServiceClient against an endpoint (e.g. `muxctl serve`).

Usage: service_client.py NAME LANE RUNTIME_DIR REQUESTS HEALTH_SECONDS
Prints one JSON object with what happened; exits 0 when every check passed.
"""
import json
import sys
import time

from running_process_service import ServiceClient, ServiceSpec, ServiceUnavailable, QueueFull

name, lane, runtime_dir = sys.argv[1], int(sys.argv[2], 0), sys.argv[3]
requests, health_seconds = int(sys.argv[4]), float(sys.argv[5])
spec = ServiceSpec(name=name, version="1.0.0", payload_protocol=lane, runtime_dir=runtime_dir, health_interval=1.0)
report = {"state_up": False, "echoed": 0, "mismatched": 0, "health_checks": 0, "health_failures": 0, "errors": []}

client = ServiceClient.connect(spec, queue_depth=256)
deadline = time.monotonic() + 10
while client.state != "up" and time.monotonic() < deadline:
    time.sleep(0.01)
report["state_up"] = client.state == "up"


def roundtrip(payloads):
    """Send every payload (windowed), collect replies by request id."""
    pending, replies, index = {}, {}, 0
    deadline = time.monotonic() + 30
    while (index < len(payloads) or pending) and time.monotonic() < deadline:
        while index < len(payloads) and len(pending) < 64:
            try:
                rid = client.send(payloads[index])
            except (ServiceUnavailable, QueueFull) as error:
                report["errors"].append(f"send: {type(error).__name__}")
                time.sleep(0.005)
                break
            pending[rid] = payloads[index]
            index += 1
        reply = client.try_recv()
        if reply is None:
            time.sleep(0.0005)
            continue
        sent = pending.pop(reply.request_id, None)
        if sent is None or reply.payload is None:
            report["errors"].append(f"reply {reply.request_id}: {reply.error}")
            continue
        replies[reply.request_id] = (sent, reply.payload)
    for sent, got in replies.values():
        if got == b"echo:" + sent:
            report["echoed"] += 1
        else:
            report["mismatched"] += 1
    report["unanswered"] = len(pending) + (len(payloads) - index)


if report["state_up"]:
    roundtrip([f"request-{i}-{'x' * (i % 50)}".encode() for i in range(requests)])
    # Health probes run every second on their own connections; stay up throughout.
    end = time.monotonic() + health_seconds
    i = 0
    while time.monotonic() < end:
        report["health_checks"] += 1
        if client.state != "up":
            report["health_failures"] += 1
        if i % 10 == 0:
            roundtrip([f"during-health-{i}".encode()])
        i += 1
        time.sleep(0.1)
    report["state_after"] = client.state
client.close()

ok = (report["state_up"] and report["echoed"] == requests + (report["health_checks"] + 9) // 10
      and report["mismatched"] == 0 and report["health_failures"] == 0 and report.get("state_after") == "up")
report["ok"] = bool(ok)
print(json.dumps(report))
sys.exit(0 if ok else 1)
