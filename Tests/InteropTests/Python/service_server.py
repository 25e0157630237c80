"""Run running-process's own ServiceServer (echo) until stdin closes.

Usage: service_server.py NAME LANE RUNTIME_DIR
Prints "ready <socket> <identity>" once the identity file is written.
"""
import sys
import threading

from running_process_service import ServiceSpec, serve

name, lane, runtime_dir = sys.argv[1], int(sys.argv[2], 0), sys.argv[3]
spec = ServiceSpec(name=name, version="1.0.0", payload_protocol=lane, runtime_dir=runtime_dir)
stop = threading.Event()


def announce():
    import os
    import time
    while not os.path.exists(spec.identity_path):
        time.sleep(0.01)
    print(f"ready {spec.endpoint} {spec.identity_path}", flush=True)
    sys.stdin.read()
    stop.set()


threading.Thread(target=announce, daemon=True).start()
serve(spec, lambda payload: b"echo:" + payload, stop=stop)
