import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
@testable import LegacyAdapters

/// kvd, a legacy line-protocol daemon, before and after the retrofit, on both adapters.
@Suite(.serialized) struct KvdRetrofitTests {
    enum Adapter: String, CaseIterable, Sendable { case posix, nio }

    /// Legacy sessions: each is a list of writes; the transcript is every byte read back.
    static let sessions: [[[UInt8]]] = [
        [Array("SET a hello world\nGET a\nGET b\nDEL a\nDEL a\nFOO\n\n".utf8)],
        Array("SET k v\nGET k\n".utf8).map { [$0] },  // one byte per write
        [Array("SET x".utf8), Array(" 1\r\nGE".utf8), Array("T x\nSET  \nGET\nDEL\nset a b\n".utf8)],
        [Array(("SET big " + String(repeating: "z", count: 20_000) + "\nGET big\n").utf8)],
        [Array("\u{01}\u{02}binary\n".utf8), Array("GET nothing\n".utf8)],
    ]

    func start(_ adapter: Adapter, mux: Bool, in sandbox: Sandbox, label: String) async throws -> (Child, String) {
        let socket = sandbox.directory.appendingPathComponent("\(label).sock").path
        let arguments = ["--socket", socket, "--adapter", adapter.rawValue] + (mux ? [] : ["--no-mux"])
        let child = try Child(Peers.kvd, arguments, environment: sandbox.environment, in: sandbox, label: label)
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? UnixSocket.connect(to: socket)) == nil {
            guard ContinuousClock.now < deadline else {
                throw NotStarted(what: "kvd", errors: child.errors)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return (child, socket)
    }

    /// Plays `writes` and returns every byte the daemon sent back until it is quiet.
    func transcript(_ socketPath: String, _ writes: [[UInt8]]) throws -> [UInt8] {
        let fd = try UnixSocket.connect(to: socketPath).release()
        defer { close(fd) }
        var out: [UInt8] = []
        func drain(quiet: Int32) {
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, quiet) > 0 else { return }
                var chunk = [UInt8](repeating: 0, count: 65536)
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return }
                out += chunk[..<n]
            }
        }
        for write in writes {
            _ = write.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            drain(quiet: 5)
        }
        drain(quiet: 300)
        return out
    }

    @Test(.timeLimit(.minutes(2)), arguments: Adapter.allCases)
    func legacyClientsSeeByteIdenticalBehaviour(adapter: Adapter) async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let (original, originalSocket) = try await start(adapter, mux: false, in: sandbox, label: "orig-\(adapter)")
        let (retrofit, retrofitSocket) = try await start(adapter, mux: true, in: sandbox, label: "mux-\(adapter)")
        defer { original.signal(SIGTERM); retrofit.signal(SIGTERM) }
        for (index, session) in Self.sessions.enumerated() {
            let before = try transcript(originalSocket, session)
            let after = try transcript(retrofitSocket, session)
            #expect(!before.isEmpty, "session \(index) got no reply from the original")
            #expect(
                after == before,
                "session \(index): \(String(decoding: after, as: UTF8.self)) vs \(String(decoding: before, as: UTF8.self))"
            )
        }
        original.signal(SIGTERM)
        retrofit.signal(SIGTERM)
        #expect(await original.wait(timeout: .seconds(10)) == 0)
        #expect(await retrofit.wait(timeout: .seconds(10)) == 0)
    }

    @Test(.timeLimit(.minutes(2)), arguments: Adapter.allCases)
    func legacyAndFramesInterleaveOnOneConnection(adapter: Adapter) async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let (daemon, socketPath) = try await start(adapter, mux: true, in: sandbox, label: "kvd")
        defer { daemon.signal(SIGTERM) }
        let probe = ProbeRequest.random()
        var writes: [[UInt8]] = [Array("SET a 1\n".utf8)]
        writes.append(try Frame(payloadProtocol: 0xF0B7, payload: Array("GET a".utf8), requestID: 7).encoded())
        writes.append(Array("SET b 2\n".utf8))
        writes.append(try probe.frame.encoded())
        writes.append(
            try Frame(payloadProtocol: 0xF0B7, payload: Array("GET b".utf8), requestID: 8).encoded()
                + Array("GET a\n".utf8))
        var bytes = try transcript(socketPath, writes)
        // Expected: "OK\n", frame(rid 7, "VALUE 1"), "OK\n", probe answer, frame(rid 8, "VALUE 2"), "VALUE 1\n".
        func takeLine() -> String? {
            guard let newline = bytes.firstIndex(of: 0x0A), bytes.first != 0x01 else { return nil }
            defer { bytes.removeFirst(newline + 1) }
            return String(decoding: bytes[..<newline], as: UTF8.self)
        }
        func takeFrame() throws -> Frame? {
            guard bytes.count >= 5, bytes[0] == 0x01 else { return nil }
            let length = Int(bytes[1]) | Int(bytes[2]) << 8 | Int(bytes[3]) << 16 | Int(bytes[4]) << 24
            guard bytes.count >= 5 + length else { return nil }
            defer { bytes.removeFirst(5 + length) }
            return try Frame(parsingFrame: Array(bytes[..<(5 + length)]))
        }
        #expect(takeLine() == "OK")
        let first = try takeFrame()
        #expect(first?.requestID == 7 && first.map { String(decoding: $0.payload, as: UTF8.self) } == "VALUE 1")
        #expect(takeLine() == "OK")
        let answer = try takeFrame()
        #expect(answer.map { (try? ProbeResponse(validating: $0, for: probe)) != nil } == true)
        let second = try takeFrame()
        #expect(second?.requestID == 8 && second.map { String(decoding: $0.payload, as: UTF8.self) } == "VALUE 2")
        #expect(takeLine() == "VALUE 1")
        #expect(bytes.isEmpty)
        daemon.signal(SIGTERM)
        #expect(await daemon.wait(timeout: .seconds(10)) == 0)
    }

    @Test(.timeLimit(.minutes(2)), arguments: Adapter.allCases)
    func epitaphsOnBothFramingsThenCleanEOFAndOthersUndisturbed(adapter: Adapter) async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let (daemon, socketPath) = try await start(adapter, mux: true, in: sandbox, label: "kvd")
        defer { daemon.signal(SIGTERM) }
        // A healthy client keeps a connection open throughout.
        let healthy = try FrameClient(socketPath: socketPath)
        let set = try healthy.request(lane: 0xF0B7, payload: Array("SET h 1".utf8))
        #expect(String(decoding: set.payload, as: UTF8.self) == "OK")

        // v1: an unserved lane.
        let v1 = try FrameClient(socketPath: socketPath)
        let refused = Result { () throws(EndpointMuxError) in
            try v1.request(lane: 0x7001, payload: [1], timeout: .seconds(5))
        }
        if case let .failure(error) = refused, let epitaph = error.epitaph {
            #expect(epitaph.status == .notSupported)
        } else {
            Issue.record("no epitaph: \(refused)")
        }
        // After the epitaph: a clean EOF, not ECONNRESET.
        let after = Result { () throws(EndpointMuxError) in try v1.readFrame(deadline: .now + .seconds(5)) }
        if case .failure(.peerClosed) = after {} else { Issue.record("expected a clean EOF, got \(after)") }

        // JSON-FD: bad JSON.
        let raw = try UnixSocket.connect(to: socketPath).release()
        defer { close(raw) }
        let garbage = Array(#"{"jsonrpc":"2.0","method":"x",,}"#.utf8)
        _ = garbage.withUnsafeBytes { send(raw, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var received: [UInt8] = []
        var sawEOF = false
        let deadline = ContinuousClock.now + .seconds(5)
        while !sawEOF, ContinuousClock.now < deadline {
            var pfd = pollfd(fd: raw, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(raw, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                received += chunk[..<n]
            } else {
                sawEOF = n == 0; if n < 0 { Issue.record("errno \(errno)"); break }
            }
        }
        #expect(sawEOF)
        let epitaph = try JSONValue(parsing: String(decoding: received, as: UTF8.self))
        #expect(epitaph["method"] == .string("rpc.epitaph"))
        #expect(epitaph["params"]?["status"] == .number(JSONNumber(Int(EpitaphStatus.invalidFrame.rawValue))))
        #expect(epitaph["params"]?["code"] == .number(-32050))

        // The healthy connection never noticed.
        let get = try healthy.request(lane: 0xF0B7, payload: Array("GET h".utf8))
        #expect(String(decoding: get.payload, as: UTF8.self) == "VALUE 1")
        daemon.signal(SIGTERM)
        #expect(await daemon.wait(timeout: .seconds(10)) == 0)
    }
}
