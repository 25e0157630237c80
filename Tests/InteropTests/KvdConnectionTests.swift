import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
@testable import LegacyAdapters

/// kvd's connection layer against the real binary (issue 7's acceptance for kvd):
/// half-close, fd and CPU accounting, `--no-mux` half-close, fd I/O that never blocks
/// the loop, the partial-message timeout, and accept under `EMFILE`.
@Suite(.serialized) struct KvdConnectionTests {
    enum Adapter: String, CaseIterable, Sendable { case posix, nio }

    /// Starts kvd (optionally under `prlimit --nofile=N`) and waits until it accepts.
    func start(
        _ adapter: Adapter, mux: Bool = true, extra: [String] = [], fileLimit: Int? = nil,
        in sandbox: Sandbox, label: String
    ) async throws -> (Child, String) {
        guard FileManager.default.isExecutableFile(atPath: Peers.kvd) else { throw Peers.PeerMissing(path: Peers.kvd) }
        let socket = sandbox.directory.appendingPathComponent("\(label).sock").path
        var arguments = ["--socket", socket, "--adapter", adapter.rawValue] + (mux ? [] : ["--no-mux"]) + extra
        var executable = Peers.kvd
        if let fileLimit {
            arguments = ["--nofile=\(fileLimit)", "--", Peers.kvd] + arguments
            executable = "/usr/bin/prlimit"
        }
        let child = try Child(executable, arguments, environment: sandbox.environment, in: sandbox, label: label)
        // A debug kvd hashes its own executable at start (seconds): wait on the socket file.
        let deadline = ContinuousClock.now + .seconds(90)
        while !FileManager.default.fileExists(atPath: socket) || (try? UnixSocket.connect(to: socket)) == nil {
            guard ContinuousClock.now < deadline, child.process.isRunning else {
                throw NotStarted(what: "kvd", errors: child.errors)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return (child, socket)
    }

    /// One scripted client: writes, half-closes, reads to EOF.
    func halfClosed(
        _ socket: String, _ text: String, timeout: Duration = .seconds(5)
    ) throws -> (reply: String, sawEOF: Bool) {
        let client = try ScriptedClient(socketPath: socket)
        client.write(text)
        client.halfClose()
        let (bytes, eof) = client.readToEnd(deadline: .now + timeout)
        return (String(decoding: bytes, as: UTF8.self), eof)
    }

    /// Lets the daemon settle after start-up, then counts its fds.
    func baseline(_ pid: Int32, socket: String) async throws -> Int {
        _ = try halfClosed(socket, "GET warmup\n")
        try await Task.sleep(for: .milliseconds(400))  // the drain after the warm-up's end
        return try #require(DaemonStats.openFileDescriptors(pid))
    }

    // MARK: - Half-close, 200 clients, fds and CPU afterwards

    @Test(.timeLimit(.minutes(3)), arguments: Adapter.allCases)
    func halfCloseGetsEveryAnswerThenEOFAndNothingLeaks(adapter: Adapter) async throws {
        let sandbox = try Sandbox()
        let (daemon, socket) = try await start(adapter, in: sandbox, label: "kvd-\(adapter)")
        defer { daemon.signal(SIGKILL) }
        let pid = daemon.process.processIdentifier
        let start = try await baseline(pid, socket: socket)

        // A good line, then a fatal one (a broken control message) in the same read: the
        // good line is answered, then the connection ends (no epitaph for a legacy peer).
        let scripts: [(send: String, expect: String)] = [
            ("GET x\n", "NOT_FOUND\n"),
            ("GET a\n{x}\n", "NOT_FOUND\n"),
            ("SET k 1\nGET k\n", "OK\nVALUE 1\n"),
        ]
        var failures = 0
        for index in 0..<200 {
            let script = scripts[index % scripts.count]
            let (reply, eof) = try halfClosed(socket, script.send)
            if reply != script.expect || !eof {
                failures += 1
                if failures <= 3 {
                    Issue.record(
                        "client \(index) sent \(script.send.debugDescription): got \(reply.debugDescription), EOF \(eof)"
                    )
                }
            }
        }
        #expect(failures == 0)
        // Every connection's fd is closed (after its drain): back to the start.
        let after = await DaemonStats.waitForFileDescriptors(pid, atMost: start, timeout: .seconds(5))
        #expect(after == start, "kvd \(adapter) holds \(after ?? -1) fds, \(start) at the start")
        // And it idles: no POLLHUP spin.
        let share = try #require(await DaemonStats.cpuShare(pid, over: .seconds(1)))
        #expect(share < 0.05, "kvd \(adapter) used \(Int(share * 100)) % CPU while idle")
        // Peers that vanish without reading their answers do not make it spin either.
        for _ in 0..<20 {
            let client = try ScriptedClient(socketPath: socket)
            client.write("GET x\nGET y\n")
        }
        try await Task.sleep(for: .milliseconds(400))
        let afterGone = await DaemonStats.waitForFileDescriptors(pid, atMost: start, timeout: .seconds(5))
        #expect(afterGone == start)
        let shareAfterGone = try #require(await DaemonStats.cpuShare(pid, over: .seconds(1)))
        #expect(shareAfterGone < 0.05, "kvd \(adapter) used \(Int(shareAfterGone * 100)) % CPU after peers vanished")
        print(
            "kvd \(adapter): 200 half-closed clients, fds \(start) → \(after ?? -1), idle CPU \(share * 100) %; after 20 vanished peers fds \(afterGone ?? -1), CPU \(shareAfterGone * 100) %"
        )
        daemon.signal(SIGTERM)
        #expect(await daemon.wait(timeout: .seconds(10)) == 0)
    }

    // MARK: - --no-mux half-close; transcripts identical with the mux

    @Test(.timeLimit(.minutes(3)), arguments: Adapter.allCases)
    func originalAnswersCompleteLinesBeforeClosingLikeTheRetrofit(adapter: Adapter) async throws {
        let sandbox = try Sandbox()
        let (original, originalSocket) = try await start(adapter, mux: false, in: sandbox, label: "orig-\(adapter)")
        let (retrofit, retrofitSocket) = try await start(adapter, in: sandbox, label: "mux-\(adapter)")
        defer { original.signal(SIGKILL); retrofit.signal(SIGKILL) }
        let originalStart = try await baseline(original.process.processIdentifier, socket: originalSocket)
        let sessions = [
            "SET a 1\nGET a\n",
            "SET a 1\nGET a\nGET",  // an unfinished last line gets no answer
            "GET nothing\nDEL a\nDEL a\n\nFOO\n",
            "SET big " + String(repeating: "z", count: 20_000) + "\nGET big\n",
        ]
        for session in sessions {
            let before = try halfClosed(originalSocket, session)
            let after = try halfClosed(retrofitSocket, session)
            #expect(before.sawEOF && after.sawEOF, "\(adapter): EOF original \(before.sawEOF), mux \(after.sawEOF)")
            #expect(!before.reply.isEmpty)
            #expect(
                before.reply == after.reply,
                "\(adapter) \(session.prefix(40).debugDescription): \(before.reply.prefix(80).debugDescription) vs \(after.reply.prefix(80).debugDescription)"
            )
        }
        #expect(try halfClosed(originalSocket, "SET a 1\nGET a\n").reply == "OK\nVALUE 1\n")
        // A peer that closes without reading: no leak, no spin.
        for _ in 0..<20 {
            let client = try ScriptedClient(socketPath: originalSocket)
            client.write("GET a\n")
        }
        let pid = original.process.processIdentifier
        let after = await DaemonStats.waitForFileDescriptors(pid, atMost: originalStart, timeout: .seconds(5))
        #expect(after == originalStart)
        let share = try #require(await DaemonStats.cpuShare(pid, over: .seconds(1)))
        #expect(share < 0.05, "kvd --no-mux \(adapter) used \(Int(share * 100)) % CPU while idle")
        print("kvd --no-mux \(adapter): fds \(originalStart) → \(after ?? -1), idle CPU \(share * 100) %")
        original.signal(SIGTERM)
        retrofit.signal(SIGTERM)
        #expect(await original.wait(timeout: .seconds(10)) == 0)
        #expect(await retrofit.wait(timeout: .seconds(10)) == 0)
    }

    // MARK: - fd I/O never blocks the loop

    /// Times a probe and a legacy `GET` from fresh clients.
    func othersAnswered(_ socket: String, key: String, expect: String) throws -> (probe: Duration, get: Duration) {
        // A raw probe: `ProbeClient` would also hash kvd's executable (seconds in debug).
        let probeStart = ContinuousClock.now
        let prober = try ScriptedClient(socketPath: socket)
        let request = ProbeRequest.random()
        prober.write(try request.frame.encoded())
        let answer = prober.readFrame(deadline: .now + .seconds(5))
        let probe = probeStart.duration(to: .now)
        let verified = answer.flatMap { try? Frame(parsingFrame: $0) }.flatMap {
            try? ProbeResponse(validating: $0, for: request)
        }
        #expect(verified != nil, "no valid probe answer")
        let getStart = ContinuousClock.now
        let client = try ScriptedClient(socketPath: socket)
        client.write("GET \(key)\n")
        let reply = String(decoding: client.read(count: expect.utf8.count, deadline: .now + .seconds(5)), as: UTF8.self)
        let get = getStart.duration(to: .now)
        #expect(reply == expect)
        return (probe, get)
    }

    /// Probes and GETs were answered promptly: the median under `bound` (a frozen loop
    /// never answers; a loaded CI machine may delay one), none over 10× `bound`.
    func expectPrompt(_ timings: [(probe: Duration, get: Duration)], bound: Duration, while doing: String) throws {
        for (name, values) in [("probe", timings.map(\.probe)), ("GET", timings.map(\.get))] {
            let sorted = values.sorted()
            let median = try #require(sorted.isEmpty ? nil : sorted[sorted.count / 2])
            #expect(median < bound, "\(name) median \(median) while \(doing): \(sorted)")
            #expect(
                sorted.last.map { $0 < bound * 10 } ?? false, "\(name) slowest \(sorted.last ?? .zero) while \(doing)")
        }
        print("kvd posix while \(doing): probe \(timings.map(\.probe)), GET \(timings.map(\.get))")
    }

    /// The `count` of a successful dumpTo / loadFrom answer.
    func count(_ reply: ControlReply) -> JSONValue? {
        if case let .result(value) = reply.response.outcome { return value["count"] }
        Issue.record("error answer: \(reply.response)")
        return nil
    }

    @Test(.timeLimit(.minutes(3)))
    func loadFromAndDumpToOnStuckPipesDoNotFreezeOthers() async throws {
        let sandbox = try Sandbox()
        let (daemon, socket) = try await start(.posix, in: sandbox, label: "kvd-fdio")
        defer { daemon.signal(SIGKILL) }
        let bound: Duration = .milliseconds(100)

        // loadFrom on a pipe whose writer stays open.
        var ends: [Int32] = [-1, -1]
        #expect(pipe(&ends) == 0)
        let writer = ends[1]
        defer { close(writer) }
        let loader = try ControlClient(socketPath: socket)
        var passed = FileDescriptorQueue()
        passed.append(takingRawValues: [ends[0]])
        try loader.send(
            .request(ControlRequest(method: "loadFrom", params: nil, id: .number(1))),
            fileDescriptors: passed, deadline: .now + .seconds(5))
        // The loader half-closes at once: its answer must still come (then EOF).
        shutdown(loader.fileDescriptor, Int32(SHUT_WR))
        try await Task.sleep(for: .milliseconds(100))  // kvd now holds the pipe open
        try expectPrompt(
            (0..<5).map { _ in try othersAnswered(socket, key: "loaded", expect: "NOT_FOUND\n") },
            bound: bound, while: "loadFrom waits")
        // The writer finishes: the request is answered and the pairs are there.
        let lines = Array("loaded=yes\nother=1\n".utf8)
        _ = lines.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) }
        close(writer)
        let loaded = try loader.waitForResponse(.number(1), deadline: .now + .seconds(5))
        #expect(count(loaded) == .number(2))
        let afterAnswer = Result { () throws(EndpointMuxError) in
            try loader.waitForResponse(.number(99), deadline: .now + .seconds(5))
        }
        if case .failure(.peerClosed) = afterAnswer {
        } else {
            Issue.record("expected EOF after the loadFrom answer, got \(afterAnswer)")
        }
        _ = try othersAnswered(socket, key: "loaded", expect: "VALUE yes\n")

        // dumpTo of more than 64 KiB into a pipe nobody reads (yet).
        let setter = try ScriptedClient(socketPath: socket)
        for index in 0..<3 {
            setter.write("SET big\(index) " + String(repeating: Character(String(index)), count: 40_000) + "\n")
            #expect(setter.read(until: 0x0A, deadline: .now + .seconds(5)) == Array("OK\n".utf8))
        }
        #expect(pipe(&ends) == 0)
        let reader = ends[0]
        defer { close(reader) }
        let dumper = try ControlClient(socketPath: socket)
        var dumpFD = FileDescriptorQueue()
        dumpFD.append(takingRawValues: [ends[1]])
        try dumper.send(
            .request(ControlRequest(method: "dumpTo", params: nil, id: .number(2))),
            fileDescriptors: dumpFD, deadline: .now + .seconds(5))
        try await Task.sleep(for: .milliseconds(100))  // the pipe is full now
        let big0 = "VALUE " + String(repeating: "0", count: 40_000) + "\n"
        try expectPrompt(
            (0..<5).map { _ in try othersAnswered(socket, key: "big0", expect: big0) },
            bound: bound, while: "dumpTo waits")
        // Now read the pipe: every pair arrives, then the answer.
        var dumped: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            var pfd = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { read(reader, $0.baseAddress, $0.count) }
            guard n > 0 else { break }  // EOF: kvd closed its end
            dumped += chunk[..<n]
        }
        let text = String(decoding: dumped, as: UTF8.self)
        #expect(dumped.count > 120_000)
        #expect(text.hasPrefix("big0=000"))
        #expect(text.contains("loaded=yes\n") && text.contains("other=1\n"))
        let dump = try dumper.waitForResponse(.number(2), deadline: .now + .seconds(5))
        #expect(count(dump) == .number(JSONNumber(text.split(separator: "\n").count)))
        daemon.signal(SIGTERM)
        #expect(await daemon.wait(timeout: .seconds(10)) == 0)
    }

    // MARK: - Partial-message timeout

    @Test(.timeLimit(.minutes(3)), arguments: Adapter.allCases)
    func partialMessagesTimeOutWithAnEpitaph(adapter: Adapter) async throws {
        let sandbox = try Sandbox()
        let (daemon, socket) = try await start(
            adapter, extra: ["--partial-timeout-ms", "1000"], in: sandbox, label: "kvd-partial-\(adapter)")
        defer { daemon.signal(SIGKILL) }
        enum Kind: CaseIterable { case oneByte, halfHeader, halfJSON }
        let prefixes: [Kind: [UInt8]] = [
            .oneByte: [0x01],
            .halfHeader: [0x01, 0x10, 0x00],
            .halfJSON: Array(#"{"jsonrpc":"2.0","method":"loadF"#.utf8),
        ]
        let count = 51
        var clients: [(Kind, ScriptedClient)] = []
        for index in 0..<count {
            let kind = Kind.allCases[index % Kind.allCases.count]
            let client = try ScriptedClient(socketPath: socket)
            client.write(prefixes[kind] ?? [])
            clients.append((kind, client))
        }
        let sent = ContinuousClock.now
        // A healthy connection with no partial message is not touched.
        let healthy = try ScriptedClient(socketPath: socket)
        var timedOut = 0
        var latest = Duration.zero
        for (index, (kind, client)) in clients.enumerated() {
            let (bytes, eof) = client.readToEnd(deadline: sent + .seconds(4))
            latest = max(latest, sent.duration(to: .now))
            guard eof else { Issue.record("\(adapter) client \(index) (\(kind)) not closed"); continue }
            switch kind {
            case .oneByte, .halfHeader:
                let epitaph = (try? Frame(parsingFrame: bytes)).flatMap { Epitaph(v1Frame: $0) }
                if epitaph?.status == .timedOut { timedOut += 1 } else { Issue.record("\(adapter) \(kind): \(bytes)") }
            case .halfJSON:
                let value = try? JSONValue(parsing: String(decoding: bytes, as: UTF8.self))
                if value?["method"] == .string("rpc.epitaph"),
                    value?["params"]?["status"] == .number(JSONNumber(Int(EpitaphStatus.timedOut.rawValue)))
                {
                    timedOut += 1
                } else {
                    Issue.record("\(adapter) \(kind): \(String(decoding: bytes, as: UTF8.self))")
                }
            }
        }
        #expect(timedOut == count)
        #expect(latest < .seconds(2), "\(adapter): the last partial connection closed after \(latest)")
        print(
            "kvd \(adapter) --partial-timeout-ms 1000: \(timedOut) of \(count) closed with TIMED_OUT, the last after \(latest)"
        )
        healthy.write("GET x\n")
        #expect(healthy.read(until: 0x0A, deadline: .now + .seconds(5)) == Array("NOT_FOUND\n".utf8))
        daemon.signal(SIGTERM)
        #expect(await daemon.wait(timeout: .seconds(10)) == 0)
    }

    // MARK: - EMFILE

    @Test(.timeLimit(.minutes(3)), arguments: Adapter.allCases)
    func acceptBacksOffWhenOutOfFdsAndRecovers(adapter: Adapter) async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else {
            Issue.record("prlimit (util-linux) is missing")
            return
        }
        let sandbox = try Sandbox()
        let (daemon, socket) = try await start(adapter, fileLimit: 64, in: sandbox, label: "kvd-emfile-\(adapter)")
        defer { daemon.signal(SIGKILL) }
        let pid = daemon.process.processIdentifier
        // More clients than kvd has fds: the rest wait in the listen backlog.
        var clients: [ScriptedClient] = []
        for _ in 0..<100 {
            let client = try ScriptedClient(socketPath: socket)
            client.write("GET x\n")
            clients.append(client)
        }
        try await Task.sleep(for: .milliseconds(300))
        let share = try #require(await DaemonStats.cpuShare(pid, over: .seconds(1)))
        #expect(share < 0.10, "kvd \(adapter) used \(Int(share * 100)) % CPU while out of fds")
        // Some were served; the others wait.
        var served: [Int] = []
        for (index, client) in clients.enumerated() {
            var pfd = pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 0) > 0 { served.append(index) }
        }
        #expect(served.count > 10 && served.count < 100, "\(adapter): \(served.count) of 100 served while out of fds")
        // The served leave; every waiting client is then served.
        for index in served.reversed() { clients.remove(at: index) }
        let recoveryStart = ContinuousClock.now
        let deadline = recoveryStart + .seconds(10)
        var late = 0
        for client in clients {
            if client.read(until: 0x0A, deadline: deadline) != Array("NOT_FOUND\n".utf8) { late += 1 }
        }
        #expect(late == 0, "\(adapter): \(late) of \(clients.count) waiting clients never served")
        print(
            "kvd \(adapter) under nofile=64: CPU \(share * 100) % while saturated, \(served.count) of 100 served at first, \(clients.count - late) of \(clients.count) waiting served after, in \(recoveryStart.duration(to: .now))"
        )
        clients.removeAll()
        let fresh = try ScriptedClient(socketPath: socket)
        fresh.write("GET y\n")
        #expect(fresh.read(until: 0x0A, deadline: .now + .seconds(5)) == Array("NOT_FOUND\n".utf8))
        daemon.signal(SIGTERM)
        #expect(await daemon.wait(timeout: .seconds(10)) == 0)
    }

    // MARK: - Memory bounded whatever the peer sends

    /// Resident memory of a process, from /proc/PID/status.
    static func residentBytes(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    /// 8,000 pipelined `GET`s of a 60 KB value that the client never reads: the engine stops
    /// deciding once answers back up, so kvd grows by far less than the 480 MB of answers.
    @Test(.timeLimit(.minutes(2)), arguments: Adapter.allCases)
    func unreadAnswersDoNotGrowMemory(adapter: Adapter) async throws {
        let sandbox = try Sandbox()
        let (daemon, socket) = try await start(adapter, in: sandbox, label: "kvd-mem-\(adapter)")
        defer { daemon.signal(SIGKILL) }
        let pid = daemon.process.processIdentifier
        let setter = try ScriptedClient(socketPath: socket)
        setter.write("SET big " + String(repeating: "v", count: 60_000) + "\n")
        _ = setter.read(until: UInt8(ascii: "\n"), deadline: .now + .seconds(10))
        let before = try #require(Self.residentBytes(pid))
        let greedy = try ScriptedClient(socketPath: socket)
        let requests = Array(String(repeating: "GET big\n", count: 8000).utf8)
        greedy.write(requests)  // 64 KB: fits the socket buffers, so this does not block
        try await Task.sleep(for: .seconds(3))
        let after = try #require(Self.residentBytes(pid))
        let grown = after - before
        print("kvd \(adapter): 8,000 unread 60 KB answers grew RSS by \(grown / 1024) KiB")
        #expect(grown < 64 * 1024 * 1024, "kvd \(adapter) grew by \(grown) bytes")
        withExtendedLifetime(greedy) {}
    }
}
