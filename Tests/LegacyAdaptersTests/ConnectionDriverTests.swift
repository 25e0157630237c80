import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
@testable import LegacyAdapters

/// A test identity (no executable hashing needed).
let testIdentity = DaemonIdentity(
    pid: UInt32(getpid()), executablePath: "/x", executableHash: [UInt8](repeating: 7, count: 32), bootID: "",
    endpoint: IPCEndpoint(namespaceID: "t", path: "/t"), startedAtUnixMilliseconds: 1)

/// Drives `driver` the way a daemon's loop does (poll on the interest, one call) until
/// `done` says so or the deadline passes; returns the events.
func drive(
    _ driver: ConnectionDriver, until deadline: ContinuousClock.Instant,
    done: ([ConnectionEvent]) -> Bool
) -> [ConnectionEvent] {
    var events: [ConnectionEvent] = []
    while !done(events), !driver.isClosed, ContinuousClock.now < deadline {
        let now = ContinuousClock.now
        let limit = SocketIO.pollMilliseconds(until: deadline, now: now)
        let timeout = driver.interest.pollTimeout(now: now)
        var pfd = pollfd(fd: driver.fileDescriptor, events: driver.interest.pollEvents, revents: 0)
        _ = poll(&pfd, 1, timeout < 0 ? limit : min(limit, timeout))
        events += driver.handle(revents: pfd.revents)
    }
    return events
}

func isClosed(_ events: [ConnectionEvent]) -> Bool {
    events.contains { if case .closed = $0 { return true } else { return false } }
}

/// Reads everything until EOF (or an error), with a deadline.
func readToEOF(_ fd: Int32, timeout: Duration = .seconds(5)) throws -> (bytes: [UInt8], error: Int32?) {
    var bytes: [UInt8] = []
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, 100)
        guard pfd.revents != 0 else { continue }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n > 0 { bytes += chunk[..<n]; continue }
        if n == 0 { return (bytes, nil) }
        if errno == EAGAIN || errno == EINTR { continue }
        return (bytes, errno)
    }
    throw FixtureError(operation: "read to EOF timed out", errno: ETIMEDOUT)
}

/// The frames in `bytes`.
func frames(in bytes: [UInt8]) throws -> [Frame] {
    var rest = bytes
    var out: [Frame] = []
    while rest.count >= 5 {
        let length = Int(rest[1]) | Int(rest[2]) << 8 | Int(rest[3]) << 16 | Int(rest[4]) << 24
        guard rest.count >= 5 + length else { break }
        out.append(try Frame(parsingFrame: Array(rest[..<(5 + length)])))
        rest.removeFirst(5 + length)
    }
    return out
}

extension FileDescriptorSuites {
    @Suite struct ConnectionDriverTests {
        let lane: PayloadProtocol = 0x7A63

        func makeDriver(
            _ fd: Int32, legacyDetector: LegacyDetector = .never, options: ConnectionOptions = ConnectionOptions()
        ) -> ConnectionDriver {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            let mux = EndpointMux(identity: testIdentity, servedProtocols: [lane], legacyDetector: legacyDetector)
            return ConnectionDriver(borrowing: fd, mux: mux, options: options)
        }

        @Test func badFrameGetsAnEpitaphThenACleanEOF() throws {
            try expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let driver = makeDriver(server)
                // A request, then a frame on an unserved lane, then junk the server never asked for.
                let good = try Frame(payloadProtocol: lane, payload: Array("hi".utf8), requestID: 1).encoded()
                let bad = try Frame(payloadProtocol: 0x7001, payload: [1], requestID: 2).encoded()
                try writeAll(
                    client,
                    good + bad + [UInt8](repeating: 0x55, count: 100_000 - good.count - bad.count).prefix(60_000))
                let events = drive(driver, until: .now + .seconds(5), done: isClosed)
                close(server)
                guard case let .payload(frame)? = events.first else { Issue.record("first event \(events)"); return }
                #expect(frame.payload == Array("hi".utf8))
                guard case let .closed(end)? = events.last, end.reason == .failed, let epitaph = end.epitaph else {
                    Issue.record("no failure: \(events)"); return
                }
                #expect(epitaph.status == .notSupported)
                let (bytes, error) = try readToEOF(client)
                #expect(error == nil, "client saw errno \(String(describing: error)) instead of a clean EOF")
                let received = try frames(in: bytes)
                #expect(received.count == 1)
                #expect(received.first.flatMap { Epitaph(v1Frame: $0) } == epitaph)
            }
        }

        @Test func epitaphReachesAFrameClient() throws {
            try expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let driver = makeDriver(server)
                try writeAll(client, [0x01, 0xFF, 0xFF, 0xFF, 0xFF])  // 4 GiB frame
                let events = drive(driver, until: .now + .seconds(5), done: isClosed)
                close(server)
                guard case let .closed(end)? = events.last, end.reason == .failed, let epitaph = end.epitaph else {
                    Issue.record("\(events)"); return
                }
                #expect(epitaph.status == .outOfRange)
                let (bytes, error) = try readToEOF(client)
                #expect(error == nil)
                #expect(try frames(in: bytes).compactMap { Epitaph(v1Frame: $0) } == [epitaph])
            }
        }

        @Test func garbageOnAServiceWithoutLegacyGetsAnEpitaph() throws {
            try expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let driver = makeDriver(server)
                try writeAll(client, Array("GET / HTTP/1.1\r\n\r\n".utf8))
                let events = drive(driver, until: .now + .seconds(5), done: isClosed)
                close(server)
                guard case let .closed(end)? = events.last, end.reason == .failed, let epitaph = end.epitaph else {
                    Issue.record("\(events)"); return
                }
                #expect(epitaph.status == .invalidFrame)
                let (bytes, _) = try readToEOF(client)
                #expect(try frames(in: bytes).compactMap { Epitaph(v1Frame: $0) }.count == 1)
            }
        }

        @Test func idleTimeoutFiresWithinItsBound() throws {
            try expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let start = ContinuousClock.now
                let driver = makeDriver(server, options: ConnectionOptions(idleTimeout: .milliseconds(300)))
                let events = drive(driver, until: .now + .seconds(5), done: isClosed)
                let elapsed = start.duration(to: .now)
                close(server)
                guard case let .closed(end)? = events.last, end.reason == .failed, let epitaph = end.epitaph else {
                    Issue.record("\(events)"); return
                }
                #expect(epitaph.status == .timedOut)
                // Fires at the bound, give or take scheduling on a loaded 2-core CI machine.
                #expect(
                    elapsed >= .milliseconds(300) && elapsed < .milliseconds(300) + .milliseconds(1500),
                    "closed after \(elapsed)")
                let (bytes, error) = try readToEOF(client)
                #expect(error == nil)
                #expect(try frames(in: bytes).compactMap { Epitaph(v1Frame: $0) }.first?.status == .timedOut)
            }
        }

        @Test func activityResetsTheIdleTimer() throws {
            try expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let driver = makeDriver(server, options: ConnectionOptions(idleTimeout: .milliseconds(400)))
                let start = ContinuousClock.now
                for i in 0..<4 {
                    try writeAll(
                        client, try Frame(payloadProtocol: lane, payload: [UInt8(i)], requestID: UInt64(i)).encoded())
                    let events = drive(driver, until: .now + .milliseconds(200)) { _ in false }
                    #expect(!isClosed(events), "closed while active after \(start.duration(to: .now))")
                }
                close(server)
            }
        }

        @Test func partialMessageTimeoutFiresWithinItsBound() throws {
            try expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let driver = makeDriver(server, options: ConnectionOptions(partialMessageTimeout: .milliseconds(300)))
                let frame = try Frame(payloadProtocol: lane, payload: Array("abcdef".utf8), requestID: 1).encoded()
                try writeAll(client, Array(frame.prefix(7)))
                let start = ContinuousClock.now
                let events = drive(driver, until: .now + .seconds(5), done: isClosed)
                let elapsed = start.duration(to: .now)
                close(server)
                guard case let .closed(end)? = events.last, end.reason == .failed, let epitaph = end.epitaph else {
                    Issue.record("\(events)"); return
                }
                #expect(epitaph.status == .timedOut)
                #expect(
                    elapsed >= .milliseconds(250) && elapsed < .milliseconds(300) + .milliseconds(1500),
                    "closed after \(elapsed)")
                _ = try readToEOF(client)
            }
        }

        @Test func perMessageLegacyInterleavesWithFrames() throws {
            try expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let options = ConnectionOptions(
                    legacyMode: .perMessage({ bytes in
                        bytes.firstIndex(of: 0x0A).map { .complete($0 + 1) } ?? .needMoreBytes
                    }))
                let driver = makeDriver(server, legacyDetector: .lineBased(), options: options)
                let frame1 = try Frame(payloadProtocol: lane, payload: Array("f1".utf8), requestID: 1).encoded()
                let frame2 = try Frame(payloadProtocol: lane, payload: Array("f2".utf8), requestID: 2).encoded()
                let probe = try ProbeRequest(nonce: Array(0..<32)).frame.encoded()
                let ordered =
                    Array("one\n".utf8) + frame1 + Array("two\n".utf8) + probe + Array("three\n".utf8) + frame2
                for byte in ordered { try writeAll(client, [byte]) }  // one byte at a time
                var events: [ConnectionEvent] = []
                events = drive(driver, until: .now + .seconds(5)) { got in
                    got.filter {
                        if case .legacyMessage = $0 { return true }; if case .payload = $0 { return true }; return false
                    }.count == 5
                }
                let summary = events.compactMap { event -> String? in
                    switch event {
                    case let .legacyMessage(line): return "L:" + String(decoding: line, as: UTF8.self)
                    case let .payload(frame): return "F:" + String(decoding: frame.payload, as: UTF8.self)
                    default: return nil
                    }
                }
                #expect(summary == ["L:one\n", "F:f1", "L:two\n", "L:three\n", "F:f2"])
                // The probe was answered in between.
                let (bytes, _) = try readAvailable(client)
                let answers = try frames(in: bytes)
                #expect(answers.count == 1 && answers.first?.payloadProtocol == .identityProbe)
                close(server)
            }
        }

        @Test func answersGivenInsideTheCallAreWrittenBeforeItReturns() throws {
            try expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let options = ConnectionOptions(
                    legacyMode: .perMessage({ bytes in
                        bytes.firstIndex(of: 0x0A).map { .complete($0 + 1) } ?? .needMoreBytes
                    }))
                let driver = makeDriver(server, legacyDetector: .lineBased(), options: options)
                // Two whole lines and half of a third: the half stays buffered across reads.
                try writeAll(client, Array("one\ntwo\nthr".utf8))
                var lines: [String] = []
                driver.handle(revents: Int16(POLLIN)) { event in
                    if case let .legacyMessage(line) = event {
                        lines.append(String(decoding: line, as: UTF8.self))
                        driver.send(bytes: Array("ok \(lines.count)\n".utf8))
                    }
                }
                #expect(lines == ["one\n", "two\n"])
                #expect(!driver.interest.write)  // nothing left to write: no second wake-up
                #expect(try readAvailable(client).bytes == Array("ok 1\nok 2\n".utf8))
                try writeAll(client, Array("ee\n".utf8))
                driver.handle(revents: Int16(POLLIN)) { event in
                    if case let .legacyMessage(line) = event {
                        lines.append(String(decoding: line, as: UTF8.self))
                        driver.send(bytes: Array("ok \(lines.count)\n".utf8))
                    }
                }
                #expect(lines == ["one\n", "two\n", "three\n"])
                #expect(try readAvailable(client).bytes == Array("ok 3\n".utf8))
                close(server)
            }
        }

        @Test func aPeerThatDoesNotReadIsThrottled() throws {
            try expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                var sendBuffer: Int32 = 4096
                setsockopt(server, SOL_SOCKET, SO_SNDBUF, &sendBuffer, socklen_t(MemoryLayout<Int32>.size))
                let driver = makeDriver(server, options: ConnectionOptions(maxQueuedOutputByteCount: 32 * 1024))
                let probe = try ProbeRequest(nonce: Array(0..<32)).frame.encoded()
                let probes = 2000  // about 600 KB of answers, far beyond the limit
                let writer = Thread {
                    var all: [UInt8] = []
                    for _ in 0..<probes { all += probe }
                    try? writeAll(client, all)
                }
                writer.start()
                // The driver reads until its answers back up, then stops asking to read.
                _ = drive(driver, until: .now + .seconds(2)) { _ in !driver.wantsReadable }
                #expect(!driver.wantsReadable)
                // Now the client reads everything; every probe is answered, nothing is lost.
                var received: [UInt8] = []
                let answerSize = try ProbeResponder(identity: testIdentity).answer(ProbeRequest(nonce: Array(0..<32)))
                    .count
                let deadline = ContinuousClock.now + .seconds(20)
                while received.count < probes * answerSize, ContinuousClock.now < deadline {
                    received += try readAvailable(client).bytes
                    _ = drive(driver, until: .now + .milliseconds(20)) { _ in false }
                }
                #expect(received.count == probes * answerSize)
                #expect(try frames(in: received).count == probes)
                close(server)
            }
        }

        @Test func stickyLegacyHandsOverTheBytesUntouched() throws {
            try expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let driver = makeDriver(
                    server, legacyDetector: .lineBased(), options: ConnectionOptions(legacyMode: .sticky))
                let bytes = Array("SET a b\n".utf8) + [0x01, 0x02, 0x03]
                try writeAll(client, bytes)
                let events = drive(driver, until: .now + .seconds(5)) { !$0.isEmpty }
                guard case let .legacyTakeover(handed)? = events.first else { Issue.record("\(events)"); return }
                #expect(handed == bytes)
                #expect(!driver.wantsReadable)
                close(server)
            }
        }
    }
}

/// Reads what is available now.
func readAvailable(_ fd: Int32) throws -> (bytes: [UInt8], eof: Bool) {
    var bytes: [UInt8] = []
    while true {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n > 0 { bytes += chunk[..<n]; continue }
        return (bytes, n == 0)
    }
}
