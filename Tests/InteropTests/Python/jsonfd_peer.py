#!/usr/bin/env python3
"""A JSON-RPC 2.0 + fd passing (bootc-dev/jsonrpc-fdpass) peer written from the spec with
the Python standard library only (socket.sendmsg / socket.recv_fds, json). It shares no
code with EndpointMux, so it checks our wire behaviour independently.

Usage:
  jsonfd_peer.py client SOCKET
      Talks to a server with muxctl serve's control contract (echo, readFds, createFds,
      stats; unknown -> -32601; notifications counted). Prints one JSON report on stdout;
      exit status 0 when every check passed, 1 otherwise.
  jsonfd_peer.py server SOCKET
      Listens on SOCKET and serves echo, readFds, createFds, stats and peerStats (this
      connection's per-recvmsg and per-sendmsg fd batch sizes) until stdin closes.
      Prints "ready SOCKET" once listening.

Wire rules implemented (spec sections 1-5):
  * sender: compact JSON, "fds" = number of attached fds (omitted at 0); at most
    max_fds (500, halved on EINVAL) fds per sendmsg; the first batch rides with the
    JSON bytes, later ones with the rest of the bytes or with one-space continuations;
    partial writes resume where they stopped.
  * receiver: bytes and fds from each recvmsg are appended to a buffer and a FIFO fd
    queue (MSG_CTRUNC is fatal); an incremental scanner finds each complete object
    (strict UTF-8 and json.loads once complete); a message waits for its fds, and only
    whitespace may arrive meanwhile (else, or at EOF: Mismatched Count).
"""
import array
import collections
import errno
import json
import os
import socket
import stat
import sys
import threading

MAX_FDS_PER_RECVMSG = 512
READ_SIZE = 65536
WHITESPACE = b" \t\n\r"


class ProtocolError(Exception):
    pass


class Scanner:
    """Finds where one JSON object ends in a growing byte buffer; each byte is looked at once."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.pos = 0
        self.start = None
        self.depth = 0
        self.in_string = False
        self.escape = False

    def scan(self, buf):
        """(start, end) of the complete object at the front of buf, or None (need more)."""
        i, n = self.pos, len(buf)
        while i < n:
            b = buf[i]
            if self.start is None:
                if b in WHITESPACE:
                    i += 1
                    continue
                if b != 0x7B:  # '{'
                    raise ProtocolError("framing error: byte 0x%02x where an object must start" % b)
                self.start, self.depth = i, 1
            elif self.in_string:
                if self.escape:
                    self.escape = False
                elif b == 0x5C:
                    self.escape = True
                elif b == 0x22:
                    self.in_string = False
            elif b == 0x22:
                self.in_string = True
            elif b == 0x7B or b == 0x5B:
                self.depth += 1
            elif b == 0x7D or b == 0x5D:
                self.depth -= 1
                if self.depth == 0:
                    self.pos = i + 1
                    return self.start, i + 1
            i += 1
        self.pos = i
        return None


def fd_count(message):
    value = message.get("fds")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError("invalid fds value %r" % (value,))
    return value


class Receiver:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.fds = collections.deque()
        self.scanner = Scanner()
        self.pending = None  # (message, fd count, end offset, raw bytes)
        self.eof = False
        self.fd_batches = []  # fds per recvmsg that carried any
        self.last_raw = b""

    def _read(self):
        data, fds, flags, _ = socket.recv_fds(self.sock, READ_SIZE, MAX_FDS_PER_RECVMSG)
        if flags & socket.MSG_CTRUNC:
            for fd in fds:
                os.close(fd)
            raise ProtocolError("MSG_CTRUNC: file descriptors were dropped")
        if fds:
            self.fd_batches.append(len(fds))
            self.fds.extend(fds)
        if data:
            self.buf += data
        else:
            self.eof = True

    def receive(self):
        """The next (message, fds) in order, or None at a clean end of stream."""
        while True:
            if self.pending is None:
                found = self.scanner.scan(self.buf)
                if found is not None:
                    start, end = found
                    raw = bytes(self.buf[start:end])
                    try:
                        message = json.loads(raw.decode("utf-8"))
                    except (UnicodeDecodeError, ValueError) as error:
                        raise ProtocolError("framing error: %s" % error)
                    if not isinstance(message, dict):
                        raise ProtocolError("not an object")
                    self.pending = (message, fd_count(message), end, raw)
            if self.pending is not None:
                message, count, end, raw = self.pending
                if len(self.fds) >= count:
                    del self.buf[:end]
                    self.scanner.reset()
                    self.pending = None
                    self.last_raw = raw
                    return message, [self.fds.popleft() for _ in range(count)]
                if any(b not in WHITESPACE for b in self.buf[end:]):
                    raise ProtocolError("mismatched count: %d declared, %d queued" % (count, len(self.fds)))
                if self.eof:
                    raise ProtocolError("mismatched count at EOF: %d declared, %d queued" % (count, len(self.fds)))
            elif self.eof:
                if self.scanner.start is not None:
                    raise ProtocolError("EOF inside a message")
                return None
            self._read()

    def close(self):
        while self.fds:
            os.close(self.fds.popleft())


class Sender:
    def __init__(self, sock):
        self.sock = sock
        self.max_fds = 500
        self.fd_batches = []  # fds per sendmsg the kernel accepted

    def send(self, message, fds=()):
        fds = list(fds)
        if fds:
            message = dict(message)
            message["fds"] = len(fds)
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        sent, index = 0, 0
        while sent < len(data) or index < len(fds):
            batch = fds[index:index + self.max_fds]
            payload = data[sent:] if sent < len(data) else b" "
            try:
                if batch:
                    n = self.sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", batch))])
                else:
                    n = self.sock.send(payload)
            except OSError as error:
                if error.errno == errno.EINVAL and len(batch) > 1:
                    self.max_fds = len(batch) // 2  # nothing was sent; retry with half
                    continue
                raise
            if batch:
                self.fd_batches.append(len(batch))
                index += len(batch)
            if sent < len(data):
                sent += n


def read_fd(fd):
    """Everything fd holds: regular files from offset 0, pipes to EOF."""
    chunks = []
    if stat.S_ISREG(os.fstat(fd).st_mode):
        offset = 0
        while True:
            chunk = os.pread(fd, READ_SIZE, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
    else:
        while True:
            chunk = os.read(fd, READ_SIZE)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def make_pipe(text):
    r, w = os.pipe()
    os.write(w, text.encode("utf-8"))
    os.close(w)
    return r


def close_all(fds):
    for fd in fds:
        os.close(fd)


# --- client mode --------------------------------------------------------------------


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.receiver = Receiver(self.sock)
        self.sender = Sender(self.sock)
        self.next_id = 1

    def call(self, method, params=None, fds=(), id=None):
        if id is None:
            id = self.next_id
            self.next_id += 1
        request = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            request["params"] = params
        request["id"] = id
        self.sender.send(request, fds)
        got = self.receiver.receive()
        if got is None:
            raise ProtocolError("EOF instead of the response to %r" % (id,))
        message, received = got
        if message.get("id") != id:
            close_all(received)
            raise ProtocolError("response id %r, expected %r" % (message.get("id"), id))
        return message, received

    def notify(self, method, params=None, fds=()):
        notification = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            notification["params"] = params
        self.sender.send(notification, fds)


def run_client(path):
    report = {"checks": {}, "errors": []}
    checks = report["checks"]

    def check(name, ok, detail=None):
        checks[name] = bool(ok)
        if not ok:
            report["errors"].append("%s: %s" % (name, detail))

    client = Client(path)
    try:
        params = {"text": "h\u00e9llo \u20ac\U0001F600", "list": [1, 2.5, True, None], "nested": {"k": [{}]}, "big": 12345678901234567890}
        message, fds = client.call("echo", params)
        close_all(fds)
        check("echo", message.get("result") == params and "error" not in message and not fds, message)

        message, fds = client.call("echo", None, id="str-1")
        close_all(fds)
        check("echo_string_id_null_result", message == {"jsonrpc": "2.0", "result": None, "id": "str-1"}, message)

        pipes = [make_pipe("py-%d" % i) for i in range(600)]
        try:
            message, fds = client.call("readFds", fds=pipes)
        finally:
            close_all(pipes)
        close_all(fds)
        expected = {"count": 600, "contents": ["py-%d" % i for i in range(600)]}
        check("readFds_600", message.get("result") == expected, str(message)[:200])
        report["send_fd_batches"] = list(client.sender.fd_batches)
        report["max_fds_per_sendmsg"] = client.sender.max_fds

        before = len(client.receiver.fd_batches)
        message, fds = client.call("createFds", {"count": 600, "prefix": "mx-"})
        contents = []
        for fd in fds:
            contents.append(read_fd(fd).decode("utf-8"))
            os.close(fd)
        report["createFds_raw"] = client.receiver.last_raw.decode("utf-8")
        report["recv_fd_batches_createFds"] = client.receiver.fd_batches[before:]
        check("createFds_600", message.get("result") == {"count": 600} and message.get("fds") == 600, message)
        check("createFds_contents", contents == ["mx-%d" % i for i in range(600)], contents[:3])

        unknown = [make_pipe("unknown-0"), make_pipe("unknown-1")]
        try:
            message, fds = client.call("no.such.method", {"x": 1}, fds=unknown)
        finally:
            close_all(unknown)
        close_all(fds)
        check("unknown_method", message.get("error") == {"code": -32601, "message": "Method not found"} and "result" not in message, message)

        notes = [make_pipe("note-0"), make_pipe("note-1")]
        try:
            client.notify("note", {"n": 1}, fds=notes)
        finally:
            close_all(notes)
        client.notify("note")
        message, fds = client.call("stats")
        close_all(fds)
        report["stats"] = message.get("result")
        check("notifications_and_stats", message.get("result") == {"requests": 6, "notifications": 2, "notificationFds": 2}, message)

        # Three requests in one write: back to back, then separated by whitespace.
        burst = b"".join(
            json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [i], "id": 100 + i}, separators=(",", ":")).encode() + sep
            for i, sep in enumerate([b"", b" \n", b"\r\n\t"]))
        client.sock.sendall(burst)
        replies = []
        for _ in range(3):
            message, fds = client.receiver.receive()
            close_all(fds)
            replies.append(message)
        check("pipelined_burst", replies == [{"jsonrpc": "2.0", "result": [i], "id": 100 + i} for i in range(3)], replies)

        client.sock.shutdown(socket.SHUT_WR)
        check("clean_end", client.receiver.receive() is None, "more data after the last reply")
    except Exception as error:  # the report says what broke
        report["errors"].append("%s: %s" % (type(error).__name__, error))
    finally:
        client.receiver.close()
        client.sock.close()
    expected = ["echo", "echo_string_id_null_result", "readFds_600", "createFds_600", "createFds_contents",
                "unknown_method", "notifications_and_stats", "pipelined_burst", "clean_end"]
    report["ok"] = not report["errors"] and sorted(checks) == sorted(expected) and all(checks.values())
    print(json.dumps(report))
    return 0 if report["ok"] else 1


# --- server mode --------------------------------------------------------------------


def serve_connection(conn):
    receiver = Receiver(conn)
    sender = Sender(conn)
    counters = {"requests": 0, "notifications": 0, "notificationFds": 0}
    try:
        while True:
            got = receiver.receive()
            if got is None:
                return
            message, fds = got
            if "method" not in message:
                close_all(fds)
                continue
            if "id" not in message:
                counters["notifications"] += 1
                counters["notificationFds"] += len(fds)
                close_all(fds)
                continue
            counters["requests"] += 1
            method, params, id = message["method"], message.get("params"), message["id"]
            reply_fds = []
            try:
                if method == "echo":
                    reply = {"result": params}
                elif method == "readFds":
                    reply = {"result": {"count": len(fds), "contents": [read_fd(fd).decode("utf-8", "replace") for fd in fds]}}
                elif method == "createFds":
                    count = int(params["count"])
                    prefix = params.get("prefix", "")
                    reply_fds = [make_pipe("%s%d" % (prefix, i)) for i in range(count)]
                    reply = {"result": {"count": count}}
                elif method == "stats":
                    reply = {"result": dict(counters)}
                elif method == "peerStats":
                    reply = {"result": {"recvFdBatches": receiver.fd_batches, "sendFdBatches": sender.fd_batches,
                                        "maxFdsPerSendmsg": sender.max_fds}}
                else:
                    reply = {"error": {"code": -32601, "message": "Method not found"}}
            finally:
                close_all(fds)
            response = {"jsonrpc": "2.0"}
            response.update(reply)
            response["id"] = id
            try:
                sender.send(response, reply_fds)
            finally:
                close_all(reply_fds)
    except (ProtocolError, OSError) as error:
        print("connection closed: %s" % error, file=sys.stderr, flush=True)
    finally:
        receiver.close()
        conn.close()


def run_server(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)

    def accept_loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    print("ready %s" % path, flush=True)
    sys.stdin.read()
    listener.close()
    os.unlink(path)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("client", "server"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(run_client(sys.argv[2]) if sys.argv[1] == "client" else run_server(sys.argv[2]))
