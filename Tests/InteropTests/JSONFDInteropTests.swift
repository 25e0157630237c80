import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
import LegacyAdapters

/// The JSON-FD control channel against an independent peer: Python/jsonfd_peer.py, written
/// from the jsonrpc-fdpass spec with the standard library only (socket.sendmsg /
/// socket.recv_fds, json). Both directions, 600 fds each way, with real processes.
/// (These tests spawn processes, so they do not count fds.)
@Suite(.serialized) struct JSONFDInteropTests {
    /// (a) The Python client against the release `muxctl serve`: echo, readFds with 600 fds,
    /// createFds with 600 fds (contents checked, recvmsg batches 250/250/100), unknown
    /// method, notifications + stats, a pipelined burst, a clean end.
    @Test(.timeLimit(.minutes(2)))
    func pythonClientAgainstMuxctlServe() async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let name = "interop-jsonfd"
        let server = try await MuxctlServer.start(sandbox, name: name)
        let endpoint = server.endpoint
        let client = try await run(
            Peers.python, [Peers.script("jsonfd_peer.py"), "client", endpoint.socketPath],
            environment: sandbox.environment, in: sandbox, label: "client", timeout: .seconds(60))
        #expect(client.status == 0, "client: \(client.output) \(client.errors)")
        let report = try JSONValue(parsing: client.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["ok"] == .bool(true), "\(report["errors"] ?? .null)")
        #expect(report["errors"] == .array([]))
        let checks = report["checks"]?.objectValue?.members ?? []
        #expect(
            checks.map(\.key) == [
                "echo", "echo_string_id_null_result", "readFds_600", "createFds_600", "createFds_contents",
                "unknown_method", "notifications_and_stats", "pipelined_burst", "clean_end",
            ])
        #expect(
            checks.allSatisfy { $0.value == .bool(true) }, "\(checks.filter { $0.value != .bool(true) }.map(\.key))")
        // Our receiver waited for the Python sender's batches: 500 refused, then 250/250/100.
        #expect(report["send_fd_batches"] == [250, 250, 100])
        #expect(report["max_fds_per_sendmsg"] == 250)
        // Our sender batched its 600 fds the same way; the JSON went with the first batch.
        #expect(report["recv_fd_batches_createFds"] == [250, 250, 100])
        #expect(report["createFds_raw"] == .string(#"{"jsonrpc":"2.0","result":{"count":600},"id":3,"fds":600}"#))
        #expect(report["stats"] == ["requests": 6, "notifications": 2, "notificationFds": 2])
        server.child.signal(SIGTERM)
        #expect(await server.child.wait(timeout: .seconds(10)) == 0, "\(server.child.errors)")
    }

    /// (b) Our ControlClient against the Python server: 600 fds each way, contents in
    /// order, unknown method, notification + stats, and the peer's own account of the
    /// batches (what each recvmsg delivered, what each sendmsg carried).
    @Test(.timeLimit(.minutes(2)))
    func controlClientAgainstPythonServer() async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let path = sandbox.directory.appendingPathComponent("py.sock").path
        let server = try Child(
            Peers.python, [Peers.script("jsonfd_peer.py"), "server", path],
            environment: sandbox.environment, in: sandbox, label: "pyserver")
        defer { server.closeInput() }
        #expect(await waitForFile(path), "the Python server never listened: \(server.errors)")

        struct Session: Sendable {
            var echo: ControlResponse
            var read: ControlResponse
            var created: ControlResponse
            var createdContents: [String]
            var unknown: ControlResponse
            var stats: ControlResponse
            var peerStats: ControlResponse
        }
        let echoed: JSONValue = [
            "text": "h\u{e9}llo \u{20ac}\u{1F600}", "big": .number(JSONNumber(text: "12345678901234567890")!),
            "list": [1, true, .null, "two"], "empty": [:],
        ]
        let session = try await onOwnThread { () throws -> Session in
            let client = try ControlClient(socketPath: path)
            let echo = try client.call("echo", params: echoed)
            let read = try client.call(
                "readFds", fileDescriptors: try pipes((0..<600).map { "sw-\($0)" }), timeout: .seconds(30))
            let created = try client.call("createFds", params: ["count": 600, "prefix": "py-"], timeout: .seconds(30))
            var received = created.takeFileDescriptors()
            var contents: [String] = []
            while let fd = received.popFirst() { contents.append(readAll(fd.rawValue)) }
            let unknown = try client.call("no.such.method", fileDescriptors: try pipes(["x", "y"]))
            try client.notify("note", params: ["n": 1], fileDescriptors: try pipes(["n0", "n1"]))
            let stats = try client.call("stats")
            let peerStats = try client.call("peerStats")
            return Session(
                echo: echo.response, read: read.response, created: created.response, createdContents: contents,
                unknown: unknown.response, stats: stats.response, peerStats: peerStats.response)
        }
        #expect(session.echo == ControlResponse(id: 1, result: echoed))
        #expect(
            session.read
                == ControlResponse(
                    id: 2,
                    result: [
                        "count": 600, "contents": .array((0..<600).map { .string("sw-\($0)") }),
                    ]))
        #expect(session.created == ControlResponse(id: 3, result: ["count": 600]))
        #expect(session.createdContents == (0..<600).map { "py-\($0)" })
        #expect(session.unknown == ControlResponse(id: 4, error: .methodNotFound()))
        #expect(
            session.stats == ControlResponse(id: 5, result: ["requests": 5, "notifications": 1, "notificationFds": 2]))
        // Our sender: 500 refused by the kernel, halved to 250; the peer's recvmsg saw
        // 250/250/100 for readFds, then 2 (unknown method) and 2 (notification). The
        // peer's sender went through the same halving for createFds.
        #expect(
            session.peerStats
                == ControlResponse(
                    id: 6,
                    result: [
                        "recvFdBatches": [250, 250, 100, 2, 2], "sendFdBatches": [250, 250, 100],
                        "maxFdsPerSendmsg": 250,
                    ]))

        server.closeInput()
        #expect(await server.wait(timeout: .seconds(10)) == 0)
        #expect(!server.errors.contains("connection closed:"), "the peer saw a protocol error: \(server.errors)")
    }

    /// (c) The `muxctl control` command against the Python server: fds passed from files
    /// and fds returned, printed in order.
    @Test(.timeLimit(.minutes(2)))
    func muxctlControlAgainstPythonServer() async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let path = sandbox.directory.appendingPathComponent("py.sock").path
        let server = try Child(
            Peers.python, [Peers.script("jsonfd_peer.py"), "server", path],
            environment: sandbox.environment, in: sandbox, label: "pyserver")
        defer { server.closeInput() }
        #expect(await waitForFile(path), "the Python server never listened: \(server.errors)")

        let created = try await run(
            Peers.muxctl, ["control", "--socket", path, "createFds", "--params", #"{"count":3,"prefix":"cli-"}"#],
            environment: sandbox.environment, in: sandbox, label: "create")
        #expect(created.status == 0, "\(created.errors)")
        #expect(
            created.output == #"{"jsonrpc":"2.0","result":{"count":3},"id":1,"fds":3}"#
                + "\nfd[0]: cli-0\nfd[1]: cli-1\nfd[2]: cli-2\n")

        let first = sandbox.directory.appendingPathComponent("first.txt").path
        let second = sandbox.directory.appendingPathComponent("second.txt").path
        try "FIRST".write(toFile: first, atomically: true, encoding: .utf8)
        try "SECOND".write(toFile: second, atomically: true, encoding: .utf8)
        let read = try await run(
            Peers.muxctl, ["control", "--socket", path, "readFds", "--fd", second, "--fd", first],
            environment: sandbox.environment, in: sandbox, label: "read")
        #expect(read.status == 0, "\(read.errors)")
        #expect(read.output == #"{"jsonrpc":"2.0","result":{"count":2,"contents":["SECOND","FIRST"]},"id":1}"# + "\n")

        let unknown = try await run(
            Peers.muxctl, ["control", "--socket", path, "nope"],
            environment: sandbox.environment, in: sandbox, label: "nope")
        #expect(unknown.status == 2, "an error answer exits 2 (README, muxctl exit statuses)")
        #expect(
            unknown.output == #"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1}"# + "\n")

        server.closeInput()
        #expect(await server.wait(timeout: .seconds(10)) == 0)
    }
}

/// Read ends of pipes holding `texts` (write ends closed), as a queue that owns them.
private func pipes(_ texts: [String]) throws -> FileDescriptorQueue {
    var queue = FileDescriptorQueue()
    for text in texts {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) }
        close(ends[1])
        guard written == bytes.count else {
            close(ends[0])
            throw POSIXError(.EIO)
        }
        queue.append(OwnedFileDescriptor(taking: ends[0]))
    }
    return queue
}

/// Everything a pipe holds, up to its end of file.
private func readAll(_ fd: Int32) -> String {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Runs blocking work on a thread of its own (never on Swift concurrency's pool).
private func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }.start()
    }
}
