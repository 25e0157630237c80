import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
import LegacyAdapters

/// `muxctl serve` (a `ServiceServer` on the shared event loops) as daemon users try it:
/// a handler stuck on a pipe, peers that never finish a message, and fd exhaustion.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ServeConnectionTests {
    static let lane: PayloadProtocol = 0x7A63

    // MARK: - Raw clients

    static func connect(_ path: String, nonBlocking: Bool = false) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        if nonBlocking { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8).prefix(107)) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result != 0 && !(nonBlocking && (errno == EINPROGRESS || errno == EAGAIN)) {
            close(fd)
            return -1
        }
        return fd
    }

    static func send(_ fd: Int32, _ bytes: [UInt8], fds: [Int32] = []) -> Bool {
        if fds.isEmpty {
            return bytes.withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                == bytes.count
        }
        let sent = try? bytes.withUnsafeBytes { raw in try SocketIO.send(to: fd, bytes: raw, fileDescriptors: fds) }
        return sent == bytes.count
    }

    /// Reads until EOF or `timeout`; nil on timeout.
    static func readToEOF(_ fd: Int32, timeout: Duration) -> [UInt8]? {
        let deadline = ContinuousClock.now + timeout
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 20)
            guard pfd.revents != 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { bytes += chunk[..<n]; continue }
            if n == 0 { return bytes }
            if errno == EAGAIN || errno == EINTR { continue }
            return bytes
        }
        return nil
    }

    /// Reads one whole v1 frame (or nil by `timeout`).
    static func readFrame(_ fd: Int32, timeout: Duration) -> Frame? {
        let deadline = ContinuousClock.now + timeout
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            if bytes.count >= 5 {
                let length = Int(bytes[1]) | Int(bytes[2]) << 8 | Int(bytes[3]) << 16 | Int(bytes[4]) << 24
                if bytes.count >= 5 + length { return try? Frame(parsingFrame: Array(bytes[..<(5 + length)])) }
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 5)
            guard pfd.revents != 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { bytes += chunk[..<n] } else if n == 0 { return nil }
        }
        return nil
    }

    /// CPU seconds (user + system) a process has used, from /proc/PID/stat.
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the name: state is field 3; utime 14 and stime 15 (1-based) → offsets 11 and 12.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    // MARK: - Tests

    @Test func aHandlerStuckOnAPipeDoesNotStallProbesOrFrames() async throws {
        let sandbox = try Sandbox()
        let server = try await MuxctlServer.start(sandbox, name: "stuck")
        defer { server.child.signal(SIGTERM) }
        // Client A: readFds on a pipe whose writer stays open.
        var ends: [Int32] = [-1, -1]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        let stuck = Self.connect(server.socketPath)
        defer { close(stuck) }
        #expect(Self.send(stuck, Array(#"{"jsonrpc":"2.0","method":"readFds","id":1,"fds":1}"#.utf8), fds: [ends[0]]))
        try await Task.sleep(for: .milliseconds(50))
        // Others are served at once: a probe and an echo frame, each on a new connection.
        for round in 0..<5 {
            let probe = ProbeRequest.random()
            let prober = Self.connect(server.socketPath)
            let started = ContinuousClock.now
            #expect(Self.send(prober, try probe.frame.encoded()))
            let answer = Self.readFrame(prober, timeout: .seconds(2))
            let probeTime = ContinuousClock.now - started
            close(prober)
            #expect(answer.map { (try? ProbeResponse(validating: $0, for: probe)) != nil } == true)
            #expect(probeTime < .milliseconds(100), "probe round \(round) took \(probeTime)")

            let echo = Self.connect(server.socketPath)
            let sent = ContinuousClock.now
            #expect(
                Self.send(
                    echo, try Frame(payloadProtocol: Self.lane, payload: Array("hi".utf8), requestID: 9).encoded()))
            let reply = Self.readFrame(echo, timeout: .seconds(2))
            let echoTime = ContinuousClock.now - sent
            close(echo)
            #expect(reply?.payload == Array("echo:hi".utf8))
            #expect(echoTime < .milliseconds(100), "echo round \(round) took \(echoTime)")
        }
        // The stuck request is answered once its bound passes (the handler read nothing).
        let answer = Self.readToEOFOrText(stuck, containing: #""id":1"#, timeout: .seconds(5))
        #expect(answer.contains(#""contents":[""]"#), "\(answer)")
    }

    static func readToEOFOrText(_ fd: Int32, containing needle: String, timeout: Duration) -> String {
        let deadline = ContinuousClock.now + timeout
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline, !String(decoding: bytes, as: UTF8.self).contains(needle) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 20)
            guard pfd.revents != 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { bytes += chunk[..<n] } else if n == 0 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func peersHoldingIncompleteMessagesAreClosedWithTimedOut() async throws {
        let sandbox = try Sandbox()
        let server = try await MuxctlServer.start(sandbox, name: "partial", extra: ["--partial-timeout-ms", "1000"])
        defer { server.child.signal(SIGTERM) }
        let shapes: [(String, [UInt8])] = [
            ("one byte", [0x01]),
            ("half a header", [0x01, 0x10, 0x00]),
            ("half a JSON object", Array(#"{"jsonrpc":"2.0","method":"ec"#.utf8)),
            ("waiting for fds", Array(#"{"jsonrpc":"2.0","method":"readFds","id":3,"fds":2}"#.utf8)),
        ]
        var clients: [(shape: String, fd: Int32)] = []
        defer { for client in clients { close(client.fd) } }
        for index in 0..<200 {
            let (shape, bytes) = shapes[index % shapes.count]
            let fd = Self.connect(server.socketPath)
            #expect(fd >= 0)
            #expect(Self.send(fd, bytes))
            clients.append((shape, fd))
        }
        let opened = ContinuousClock.now
        var closedInTime = 0
        for client in clients {
            let remaining = max(.milliseconds(1), opened + .milliseconds(2500) - ContinuousClock.now)
            guard let bytes = Self.readToEOF(client.fd, timeout: remaining) else {
                Issue.record("\(client.shape): not closed in time")
                continue
            }
            closedInTime += 1
            if bytes.first == 0x01 {
                let epitaph = (try? Frame(parsingFrame: bytes)).flatMap { Epitaph(v1Frame: $0) }
                #expect(epitaph?.status == .timedOut, "\(client.shape)")
            } else {
                let text = String(decoding: bytes, as: UTF8.self)
                #expect(
                    text.contains(#""method":"rpc.epitaph""#) && text.contains(#""status":-21"#),
                    "\(client.shape): \(text)")
            }
        }
        #expect(closedInTime == 200)
        #expect(ContinuousClock.now - opened < .milliseconds(2500))
    }

    @Test func outOfFdsTheServerBacksOffAndRecovers() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else {
            Issue.record("prlimit (util-linux) is missing")
            return
        }
        let sandbox = try Sandbox()
        let server = try await MuxctlServer.start(sandbox, name: "emfile", prefix: ["/usr/bin/prlimit", "--nofile=64"])
        defer { server.child.signal(SIGTERM) }
        var clients: [Int32] = []
        defer { for fd in clients { close(fd) } }
        for _ in 0..<200 {
            let fd = Self.connect(server.socketPath, nonBlocking: true)
            if fd >= 0 { clients.append(fd) }
        }
        try await Task.sleep(for: .milliseconds(300))
        // prlimit runs the server as its own child process image (exec): the pid is the server's.
        let before = Self.cpuSeconds(server.pid)
        let wall = ContinuousClock.now
        try await Task.sleep(for: .seconds(1))
        let used = Self.cpuSeconds(server.pid) - before
        let elapsed =
            Double((ContinuousClock.now - wall).components.seconds)
            + Double((ContinuousClock.now - wall).components.attoseconds) / 1e18
        #expect(used / elapsed < 0.10, "server used \(used) s of CPU in \(elapsed) s while out of fds")
        // Others leave; a new client is served.
        for fd in clients { close(fd) }
        clients = []
        let probe = ProbeRequest.random()
        var served = false
        let deadline = ContinuousClock.now + .seconds(5)
        while !served, ContinuousClock.now < deadline {
            let fd = Self.connect(server.socketPath)
            if fd >= 0, Self.send(fd, try probe.frame.encoded()), let answer = Self.readFrame(fd, timeout: .seconds(1))
            {
                served = (try? ProbeResponse(validating: answer, for: probe)) != nil
            }
            if fd >= 0 { close(fd) }
        }
        #expect(served)
    }
}
