@_spi(Internals) import EndpointMux
@testable import LegacyAdapters
import LegacyAdaptersNIO
import NIOCore
import NIOEmbedded
import Testing
import Glibc

// One table of scripted inputs through every adapter — the POSIX `ConnectionDriver`,
// `AsyncConnection`, the SwiftNIO handler and the SwiftNIO decoder — delivered whole, byte
// by byte and in random splits; the bytes written to the peer, the events delivered to the
// daemon and whether the connection ended must be the same everywhere.
//
// Allowed differences, all because SwiftNIO cannot receive fds (it reads with read(2)):
// - cases that pass fds (`fds > 0`) are compared across the POSIX driver and
//   `AsyncConnection` only; under NIO the same bytes end at once with NOT_SUPPORTED
//   (checked separately below).
// Timer cases run on synthetic time: the POSIX driver takes `now` as a parameter and NIO's
// `EmbeddedEventLoop` advances its clock; `AsyncConnection` runs on real time and skips them.

/// A daemon's behaviour, the same on every adapter: echo frames, upper-case legacy lines,
/// answer control requests with their params.
enum Daemon {
    static func answer(frame: Frame) -> Frame? {
        frame.kind == .request ? frame.response(payload: Array("echo:".utf8) + frame.payload) : nil
    }

    static func answer(line: [UInt8]) -> [UInt8] {
        Array(String(decoding: line, as: UTF8.self).uppercased().utf8)
    }

    static func answer(control message: ControlMessage) -> ControlMessage? {
        guard case let .request(request) = message else { return nil }
        return .response(ControlResponse(id: request.id, result: request.params ?? .null))
    }

    static func describe(_ message: ControlMessage) -> String {
        switch message {
        case let .request(request): "request \(request.method) \(request.id)"
        case let .notification(notification): "notification \(notification.method)"
        case .response: "response"
        }
    }
}

struct ParityCase: Sendable, CustomStringConvertible {
    enum Legacy: Sendable { case reject, sticky, lines }

    var name: String
    var input: [UInt8]
    var halfClose = false
    var legacy = Legacy.reject
    var control = true
    var limits = MuxLimits()
    /// Fds sent with the first chunk (POSIX and async only).
    var fds = 0
    /// Partial-message timeout that expires after the input (synthetic time only).
    var partialTimeout: Duration?

    var description: String { name }

    var mux: EndpointMux {
        EndpointMux(
            identity: parityIdentity, servedProtocols: [parityLane],
            legacyDetector: legacy == .reject ? .never : .lineBased(),
            limits: limits, acceptsControlMessages: control)
    }

    static let lineLength: @Sendable (UnsafeRawBufferPointer) -> LegacyMessageLength = { bytes in
        bytes.firstIndex(of: UInt8(ascii: "\n")).map { .complete($0 + 1) } ?? .needMoreBytes
    }

    var options: ConnectionOptions {
        let mode: LegacyMode =
            switch legacy {
            case .reject: .reject
            case .sticky: .sticky
            case .lines: .perMessage(Self.lineLength)
            }
        return ConnectionOptions(legacyMode: mode, partialMessageTimeout: partialTimeout ?? .seconds(30))
    }

    var nioConfiguration: EndpointMuxConfiguration {
        let mode: EndpointMuxLegacyMode =
            switch legacy {
            case .reject: .reject
            case .sticky: .sticky
            case .lines: .perMessage(EndpointMuxLegacyDecoder(length: Self.lineLength))
            }
        let timeout = partialTimeout.map {
            TimeAmount.nanoseconds(
                Int64($0.components.seconds) * 1_000_000_000
                    + Int64($0.components.attoseconds / 1_000_000_000))
        }
        return EndpointMuxConfiguration(legacyMode: mode, partialMessageTimeout: timeout ?? .seconds(30))
    }
}

let parityLane: PayloadProtocol = 0x7A63
let parityIdentity = DaemonIdentity(
    pid: 4242, executablePath: "/usr/bin/parityd", executableHash: [UInt8](repeating: 3, count: 32), bootID: "boot",
    endpoint: IPCEndpoint(namespaceID: "parity", path: "/tmp/parity.sock"), startedAtUnixMilliseconds: 1)

/// What one run produced.
struct Outcome: Equatable, CustomStringConvertible {
    var written: [UInt8] = []
    var events: [String] = []
    var ended = false

    var description: String {
        "ended \(ended), events \(events), written \(String(decoding: written, as: UTF8.self).debugDescription)"
    }
}

// MARK: - The table

func frameBytes(
    _ payload: String, lane: PayloadProtocol = parityLane, kind: FrameKind = .request, id: UInt64 = 1
) -> [UInt8] {
    (try? Frame(kind: kind, payloadProtocol: lane, payload: Array(payload.utf8), requestID: id).encoded()) ?? []
}

func text(_ string: String) -> [UInt8] { Array(string.utf8) }

let probeBytes = (try? ProbeRequest(nonce: Array(0..<32)).frame.encoded()) ?? []

let parityCases: [ParityCase] = {
    let echo = #"{"jsonrpc":"2.0","method":"echo","params":{"a":1},"id":1}"#
    let note = #"{"jsonrpc":"2.0","method":"note","params":[1]}"#
    var cases: [ParityCase] = [
        // Frames and probes.
        ParityCase(name: "one request frame", input: frameBytes("hi")),
        ParityCase(name: "two frames", input: frameBytes("a", id: 1) + frameBytes("b", id: 2)),
        ParityCase(
            name: "event and response kinds reach the daemon",
            input: frameBytes("e", kind: .event) + frameBytes("r", kind: .response)),
        ParityCase(name: "unserved lane", input: frameBytes("x", lane: 0x7C4C)),
        ParityCase(name: "first-party lane 0x0000", input: frameBytes("x", lane: 0x0000)),
        ParityCase(name: "frame longer than the cap", input: [0x01, 0xFF, 0xFF, 0xFF, 0x7F]),
        ParityCase(name: "undecodable body", input: [0x01, 0x02, 0x00, 0x00, 0x00, 0xFF, 0xFF]),
        ParityCase(name: "probe", input: probeBytes),
        ParityCase(
            name: "malformed probe",
            input: (try? Frame(payloadProtocol: .identityProbe, payload: [1, 2, 3]).encoded()) ?? []),
        ParityCase(name: "probe then frame", input: probeBytes + frameBytes("after")),
        ParityCase(name: "frame then half-close", input: frameBytes("bye"), halfClose: true),
        ParityCase(name: "half a frame then half-close", input: Array(frameBytes("cut").prefix(7)), halfClose: true),
        ParityCase(name: "frame then a non-frame byte", input: frameBytes("ok") + text("x")),
        ParityCase(name: "nothing then half-close", input: [], halfClose: true),
        ParityCase(name: "64 KiB payload", input: frameBytes(String(repeating: "p", count: 65536))),
        ParityCase(name: "forty small frames", input: (1...40).flatMap { frameBytes("n\($0)", id: UInt64($0)) }),
        // Control messages.
        ParityCase(name: "control request", input: text(echo)),
        ParityCase(name: "control notification", input: text(note)),
        ParityCase(name: "request and notification", input: text(echo + note)),
        ParityCase(name: "invalid JSON", input: text(#"{"jsonrpc":"2.0",,}"#)),
        ParityCase(name: "JSON array", input: text("[1,2]")),
        ParityCase(name: "JSON number", input: text(" 42 ")),
        ParityCase(name: "JSON string", input: text("\"s\"")),
        ParityCase(name: "object without id is an invalid request", input: text(#"{"foo":1}"# + echo)),
        ParityCase(name: "method not a string", input: text(#"{"jsonrpc":"2.0","method":5,"id":9}"#)),
        ParityCase(name: "whitespace before an object", input: text(" \n\t" + echo)),
        ParityCase(
            name: "pretty-printed object",
            input: text("{\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"echo\",\n  \"id\": 2\n}\n")),
        ParityCase(name: "JSON cut by half-close", input: text(#"{"jsonrpc":"2.0","met"#), halfClose: true),
        ParityCase(
            name: "nesting deeper than the limit", input: text(#"{"a":[[[[[1]]]]]}"#),
            limits: MuxLimits(control: ControlLimits(maxDepth: 4))),
        ParityCase(
            name: "message larger than the limit", input: text(echo),
            limits: MuxLimits(control: ControlLimits(maxMessageBytes: 24))),
        ParityCase(name: "control then frame", input: text(echo) + frameBytes("f")),
        ParityCase(name: "control, newline, frame", input: text(echo + "\n") + frameBytes("f")),
        ParityCase(name: "control messages off", input: text(echo), control: false),
        ParityCase(name: "fds -1", input: text(#"{"jsonrpc":"2.0","method":"m","id":1,"fds":-1}"#)),
        ParityCase(name: "fds 1.5", input: text(#"{"jsonrpc":"2.0","method":"m","id":1,"fds":1.5}"#)),
        ParityCase(name: "control then half-close", input: text(echo), halfClose: true),
        // Fds (POSIX and async only).
        ParityCase(name: "request with one fd", input: text(#"{"jsonrpc":"2.0","method":"m","id":1,"fds":1}"#), fds: 1),
        ParityCase(
            name: "request short of its fds at half-close",
            input: text(#"{"jsonrpc":"2.0","method":"m","id":1,"fds":2}"#), halfClose: true, fds: 1),
        ParityCase(name: "notification with two fds", input: text(#"{"jsonrpc":"2.0","method":"n","fds":2}"#), fds: 2),
        // Legacy, per message.
        ParityCase(name: "one legacy line", input: text("GET a\n"), legacy: .lines),
        ParityCase(name: "two legacy lines", input: text("SET a 1\nGET a\n"), legacy: .lines),
        ParityCase(name: "line then frame", input: text("GET a\n") + frameBytes("f"), legacy: .lines),
        ParityCase(name: "frame then line", input: frameBytes("f") + text("GET a\n"), legacy: .lines),
        ParityCase(name: "line then control", input: text("GET a\n" + echo), legacy: .lines),
        ParityCase(name: "lines then half-close", input: text("SET a 1\nGET a\n"), halfClose: true, legacy: .lines),
        ParityCase(name: "a good line then a fatal one", input: text("GET a\n{x}\n"), legacy: .lines),
        ParityCase(name: "half a line then half-close", input: text("GET a\nGET b"), halfClose: true, legacy: .lines),
        ParityCase(name: "probe then line", input: probeBytes + text("GET a\n"), legacy: .lines),
        // Legacy, sticky.
        ParityCase(name: "sticky line", input: text("HELLO there\nmore\n"), legacy: .sticky),
        ParityCase(name: "sticky after a frame", input: frameBytes("f") + text("HELLO\n"), legacy: .sticky),
        ParityCase(name: "sticky after a probe", input: probeBytes + text("HELLO\n"), legacy: .sticky),
        // No legacy protocol.
        ParityCase(name: "legacy bytes rejected", input: text("HELLO\n")),
        ParityCase(name: "whitespace only then half-close", input: text("\n\n"), halfClose: true),
        // Timers (synthetic time).
        ParityCase(name: "half a header times out", input: [0x01, 0x10], partialTimeout: .seconds(1)),
        ParityCase(
            name: "half a JSON object times out", input: text(#"{"jsonrpc":"2.0","me"#), partialTimeout: .seconds(1)),
        ParityCase(name: "one whitespace byte times out", input: text(" "), partialTimeout: .seconds(1)),
        ParityCase(
            name: "half a legacy line times out", input: text("GET a\nGET"), legacy: .lines, partialTimeout: .seconds(1)
        ),
    ]
    return cases
}()

// MARK: - Splits

enum Split: Sendable, CustomStringConvertible {
    case whole, byteByByte, random(seed: UInt64)

    var description: String {
        switch self {
        case .whole: "whole"
        case .byteByByte: "byte by byte"
        case let .random(seed): "random splits (seed \(seed))"
        }
    }

    func chunks(_ input: [UInt8]) -> [[UInt8]] {
        guard !input.isEmpty else { return [] }
        switch self {
        case .whole:
            return [input]
        case .byteByByte:
            // Long inputs: the first 2 KiB byte by byte, then the rest at once.
            let head = input.prefix(2048).map { [$0] }
            return input.count > 2048 ? head + [Array(input.dropFirst(2048))] : head
        case let .random(seed):
            var state = seed &+ 0x9E37_79B9_7F4A_7C15
            var chunks: [[UInt8]] = []
            var index = 0
            while index < input.count {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let size = 1 + Int((state >> 33) % 23)
                chunks.append(Array(input[index..<min(input.count, index + size)]))
                index += size
            }
            return chunks
        }
    }
}

let splits: [Split] = [.whole, .byteByByte, .random(seed: 1), .random(seed: 2), .random(seed: 3)]

// MARK: - Runners

enum SocketPair {
    static func make() throws -> (server: Int32, client: Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw EndpointMuxError.system(operation: "socketpair", errno: errno)
        }
        return (fds[0], fds[1])
    }

    /// Writes `bytes` (with `fds` pipe read ends attached) from the client.
    static func write(_ fd: Int32, _ bytes: [UInt8], fds: Int) throws {
        var pipes = FileDescriptorQueue()
        for _ in 0..<fds {
            var ends: [Int32] = [-1, -1]
            guard pipe(&ends) == 0 else { throw EndpointMuxError.system(operation: "pipe", errno: errno) }
            _ = close(ends[1])
            pipes.append(OwnedFileDescriptor(taking: ends[0]))
        }
        var queue = OutboundQueue()
        queue.enqueue(bytes, fileDescriptors: pipes)
        try queue.flushBlocking(to: fd, deadline: .now + .seconds(5))
    }

    /// Everything the peer can read now.
    static func drain(_ fd: Int32) -> (bytes: [UInt8], eof: Bool) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { bytes += chunk[..<n]; continue }
            return (bytes, n == 0)
        }
    }
}

/// The POSIX driver on a real socketpair, on synthetic time.
func runPOSIX(_ test: ParityCase, _ split: Split) throws -> Outcome {
    let (server, client) = try SocketPair.make()
    defer { close(server); close(client) }
    var now = ContinuousClock.now
    let driver = ConnectionDriver(borrowing: server, mux: test.mux, options: test.options, now: now)
    var outcome = Outcome()
    var takeover: [UInt8]?
    func handle(_ events: [ConnectionEvent]) {
        for event in events {
            switch event {
            case let .payload(frame):
                outcome.events.append(
                    "payload \(frame.kind) \(String(decoding: frame.payload.prefix(64), as: UTF8.self))")
                if let reply = Daemon.answer(frame: frame) { try? driver.send(reply) }
            case let .legacyMessage(line):
                outcome.events.append("legacy \(String(decoding: line, as: UTF8.self))")
                driver.send(bytes: Daemon.answer(line: line))
            case let .legacyTakeover(bytes):
                takeover = bytes
            case let .control(received):
                outcome.events.append(
                    "control \(Daemon.describe(received.message)) fds \(received.fileDescriptorCount)")
                if let reply = Daemon.answer(control: received.message) { driver.send(reply) }
            case .closed:
                outcome.ended = true
            }
        }
    }
    /// Calls the driver until it has nothing left to do now (each call a later instant).
    func settle() {
        for _ in 0..<10_000 where !driver.isClosed {
            now += .microseconds(1)
            var pfd = pollfd(fd: server, events: driver.interest.pollEvents, revents: 0)
            _ = poll(&pfd, 1, 0)
            let due = driver.interest.deadline.map { $0 <= now } ?? false
            guard pfd.revents != 0 || due || driver.interest.write else { return }
            handle(driver.handle(revents: pfd.revents, now: now))
        }
    }
    for (index, chunk) in split.chunks(test.input).enumerated() {
        try SocketPair.write(client, chunk, fds: index == 0 ? test.fds : 0)
        settle()
    }
    if test.halfClose { shutdown(client, Int32(SHUT_WR)) }
    settle()
    if let timeout = test.partialTimeout {
        now += timeout
        handle(driver.handle(revents: 0, now: now))
        settle()
    }
    // Let a drain that waits for the peer run out.
    if !driver.isClosed, let deadline = driver.interest.deadline, deadline <= now + .seconds(1) {
        now = deadline
        handle(driver.handle(revents: 0, now: now))
        settle()
    }
    if var taken = takeover {
        taken += SocketPair.drain(server).bytes  // the daemon reads the socket itself now
        outcome.events.append("takeover \(String(decoding: taken, as: UTF8.self))")
    }
    outcome.written = SocketPair.drain(client).bytes
    return outcome
}

/// The SwiftNIO handler (or decoder) on an EmbeddedChannel, on the embedded clock.
func runNIO(_ test: ParityCase, _ split: Split, decoder: Bool) throws -> Outcome {
    let channel = EmbeddedChannel()
    let daemon = NIODaemon()
    if decoder {
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(EndpointMuxDecoder(mux: test.mux, configuration: test.nioConfiguration)))
    } else {
        try channel.pipeline.syncOperations.addHandler(
            EndpointMuxHandler(mux: test.mux, configuration: test.nioConfiguration))
    }
    try channel.pipeline.syncOperations.addHandler(daemon)
    try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/parity-peer")).wait()
    for chunk in split.chunks(test.input) where channel.isActive {
        try channel.writeInbound(ByteBuffer(bytes: chunk))
    }
    if test.halfClose, channel.isActive { channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
    if let timeout = test.partialTimeout {
        channel.embeddedEventLoop.advanceTime(
            by: .nanoseconds(
                Int64(timeout.components.seconds) * 1_000_000_000
                    + Int64(timeout.components.attoseconds / 1_000_000_000)))
    }
    channel.embeddedEventLoop.advanceTime(by: .seconds(1))  // drains run out
    var outcome = Outcome(events: daemon.events, ended: !channel.isActive)
    if let taken = daemon.takeover { outcome.events.append("takeover \(String(decoding: taken, as: UTF8.self))") }
    while let buffer = try channel.readOutbound(as: ByteBuffer.self) { outcome.written += buffer.readableBytesView }
    _ = try? channel.finish(acceptAlreadyClosed: true)
    return outcome
}

/// The daemon behind the NIO handler.
final class NIODaemon: ChannelInboundHandler {
    /// Mixed: ``EndpointMuxMessage``s, and `ByteBuffer`s after a sticky takeover.
    typealias InboundIn = Any
    var events: [String] = []
    var takeover: [UInt8]?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        func write(_ bytes: [UInt8]) {
            context.writeAndFlush(NIOAny(ByteBuffer(bytes: bytes)), promise: nil)
        }
        let value = unwrapInboundIn(data)
        if let message = value as? EndpointMuxMessage {
            switch message {
            case let .frame(frame):
                events.append("payload \(frame.kind) \(String(decoding: frame.payload.prefix(64), as: UTF8.self))")
                if let reply = Daemon.answer(frame: frame), let bytes = try? reply.encoded() { write(bytes) }
            case let .legacy(buffer):
                let line = Array(buffer.readableBytesView)
                events.append("legacy \(String(decoding: line, as: UTF8.self))")
                write(Daemon.answer(line: line))
            case let .control(message):
                events.append("control \(Daemon.describe(message)) fds 0")
                if let reply = Daemon.answer(control: message) { write(reply.encoded()) }
            }
        } else if let buffer = value as? ByteBuffer {
            takeover = (takeover ?? []) + Array(buffer.readableBytesView)
        } else if let data = value as? IOData, case let .byteBuffer(buffer) = data {
            takeover = (takeover ?? []) + Array(buffer.readableBytesView)
        } else {
            events.append("unexpected \(type(of: value))")
        }
    }
}

/// `AsyncConnection` on a real socketpair, real time; a consumer task is the daemon.
func runAsync(_ test: ParityCase, _ split: Split, expectEnd: Bool) async throws -> Outcome {
    let (server, client) = try SocketPair.make()
    defer { close(client) }
    let connection = try AsyncConnection(
        taking: OwnedFileDescriptor(taking: server), mux: test.mux, options: test.options)
    let consumer = Task { () -> (events: [String], takeover: [UInt8]?, ended: Bool) in
        var events: [String] = []
        var takeover: [UInt8]?
        var ended = false
        for await event in connection.events {
            switch event {
            case let .payload(frame):
                events.append("payload \(frame.kind) \(String(decoding: frame.payload.prefix(64), as: UTF8.self))")
                if let reply = Daemon.answer(frame: frame) { try? connection.send(reply) }
            case let .legacyMessage(line):
                if takeover != nil {
                    takeover? += line  // the stream after a sticky takeover, as read
                    continue
                }
                events.append("legacy \(String(decoding: line, as: UTF8.self))")
                connection.send(bytes: Daemon.answer(line: line))
            case let .legacyTakeover(bytes):
                takeover = bytes
            case let .control(received):
                events.append("control \(Daemon.describe(received.message)) fds \(received.fileDescriptorCount)")
                if let reply = Daemon.answer(control: received.message) {
                    connection.send(OutgoingControlMessage(reply))
                }
            case .closed:
                ended = true
            }
        }
        return (events, takeover, ended)
    }
    for (index, chunk) in split.chunks(test.input).enumerated() {
        try SocketPair.write(client, chunk, fds: index == 0 ? test.fds : 0)
    }
    if test.halfClose { shutdown(client, Int32(SHUT_WR)) }
    // Read until EOF (an ending connection) or until the output has been quiet for a while.
    var written: [UInt8] = []
    let deadline = ContinuousClock.now + .seconds(5)
    var quietSince = ContinuousClock.now
    while ContinuousClock.now < deadline {
        var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, 5)
        let (bytes, eof) = SocketPair.drain(client)
        if !bytes.isEmpty { written += bytes; quietSince = .now }
        if eof { break }
        if !expectEnd, ContinuousClock.now - quietSince > .milliseconds(60) { break }
    }
    var outcome = Outcome(written: written)
    if expectEnd {
        let result = await consumer.value
        outcome.events = result.events
        outcome.ended = result.ended
        if let taken = result.takeover { outcome.events.append("takeover \(String(decoding: taken, as: UTF8.self))") }
    } else {
        shutdown(client, Int32(SHUT_RDWR))
        let result = await consumer.value
        outcome.events = result.events
        if let taken = result.takeover { outcome.events.append("takeover \(String(decoding: taken, as: UTF8.self))") }
    }
    return outcome
}

// MARK: - Tests

@Suite(.serialized, .timeLimit(.minutes(5)))
struct AdapterParityTests {
    @Test func theTableIsLargeEnough() {
        #expect(parityCases.count >= 50)
    }

    @Test(arguments: parityCases)
    func everyAdapterDoesTheSame(_ test: ParityCase) async throws {
        let reference = try runPOSIX(test, .whole)
        #expect(
            !reference.written.isEmpty || !reference.events.isEmpty || reference.ended,
            "\(test.name): the reference run did nothing")
        for split in splits {
            let posix = try runPOSIX(test, split)
            #expect(posix == reference, "POSIX driver, \(split): \(posix)\nexpected \(reference)")
            if test.fds == 0 {
                for decoder in [false, true] {
                    let nio = try runNIO(test, split, decoder: decoder)
                    let expected = reference
                    if test.legacy == .sticky && decoder {
                        // The decoder cannot remove itself: it is documented to refuse sticky mode.
                        continue
                    }
                    #expect(
                        nio == expected,
                        "NIO \(decoder ? "decoder" : "handler"), \(split): \(nio)\nexpected \(expected)")
                }
            }
            if test.partialTimeout == nil {
                let async = try await runAsync(test, split, expectEnd: reference.ended)
                if test.legacy == .sticky {
                    // The connection keeps the socket (the daemon cannot read it) and ends
                    // when the test closes its side: compare what was delivered and written.
                    #expect(
                        async.events == reference.events && async.written == reference.written,
                        "AsyncConnection, \(split): \(async)\nexpected \(reference)")
                } else {
                    #expect(async == reference, "AsyncConnection, \(split): \(async)\nexpected \(reference)")
                }
            }
        }
    }

    /// The listed difference: NIO cannot receive fds, so a message that declares some ends
    /// at once with NOT_SUPPORTED (after a -32050 answer to a request).
    @Test(arguments: parityCases.filter { $0.fds > 0 })
    func underNIOFdsAreRefusedAtOnce(_ test: ParityCase) throws {
        for decoder in [false, true] {
            let outcome = try runNIO(test, .whole, decoder: decoder)
            let text = String(decoding: outcome.written, as: UTF8.self)
            #expect(text.contains(#""method":"rpc.epitaph""#) && text.contains(#""status":-2"#), "\(text)")
            #expect(outcome.ended)
        }
    }
}
