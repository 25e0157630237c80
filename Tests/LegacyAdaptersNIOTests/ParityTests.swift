@_spi(Internals) import EndpointMux
import LegacyAdaptersNIO
import NIOCore
import NIOEmbedded
import Testing

/// The NIO handler and decoder against the connection engine itself (what the POSIX
/// `ConnectionDriver` executes): the same input gives the same bytes written and the
/// same messages delivered, whole and byte by byte.
@Suite struct ParityTests {
    struct Outcome: Equatable, CustomStringConvertible {
        var written: [UInt8]
        var delivered: [EndpointMuxMessage]
        var description: String {
            "written \(String(decoding: written, as: UTF8.self).debugDescription) delivered \(delivered)"
        }
    }

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var input: [UInt8]
        var endOfInput = false
        var mux: EndpointMux = Fixtures.mux()
        var perMessage = false
        var description: String { name }
    }

    static let request = ControlMessage.request(ControlRequest(method: "status", id: 3))

    static let cases: [Case] = {
        let frame = (try? Fixtures.frame().encoded()) ?? []
        let probe = (try? Fixtures.probe().frame.encoded()) ?? []
        return [
            Case(name: "JSON array → rpc.epitaph -45", input: Array("[1,2]".utf8)),
            Case(name: "JSON number → rpc.epitaph", input: Array(" 42 ".utf8)),
            Case(name: "JSON string → rpc.epitaph", input: Array("\"x\"".utf8)),
            Case(
                name: "non-JSON-RPC object without id → -32600 id null",
                input: Array(#"{"foo":1}"#.utf8) + request.encoded()),
            Case(
                name: "newline before a frame after control traffic",
                input: request.encoded() + Array("\n".utf8) + frame),
            Case(name: "JSON cut by SHUT_WR", input: Array(#"{"jsonrpc":"2.0","met"#.utf8), endOfInput: true),
            Case(
                name: "control messages off in the mux",
                input: Array(#"{"jsonrpc":"2.0","method":"x"}"#.utf8),
                mux: EndpointMux(
                    identity: Fixtures.identity, servedProtocols: [Fixtures.lane],
                    acceptsControlMessages: false)),
            Case(
                name: "mux control limits",
                input: Array(#"{"jsonrpc":"2.0","method":"a-method-name-longer-than-the-limit"}"#.utf8),
                mux: Fixtures.mux(limits: MuxLimits(control: ControlLimits(maxMessageBytes: 24)))),
            Case(name: "probe then frame then EOF", input: probe + frame, endOfInput: true),
            Case(name: "unserved lane", input: (try? Fixtures.frame(0x7C4C).encoded()) ?? []),
            Case(name: "request with fds", input: Array(#"{"jsonrpc":"2.0","method":"open","id":7,"fds":1}"#.utf8)),
            Case(name: "legacy line then bad JSON", input: Array("GET a\n{x}\n".utf8), perMessage: true),
            Case(name: "legacy half-close", input: Array("SET a 1\nGET a\n".utf8), endOfInput: true, perMessage: true),
            Case(name: "reject legacy", input: Array("HELLO\n".utf8)),
        ]
    }()

    /// Runs `input` through a bare machine with the options the NIO adapter uses.
    static func engine(_ test: Case) -> Outcome {
        var now = ContinuousClock.now
        let mode: LegacyMode =
            test.perMessage
            ? .perMessage { $0.firstIndex(of: UInt8(ascii: "\n")).map { .complete($0 + 1) } ?? .needMoreBytes }
            : .reject
        var machine = ConnectionStateMachine(
            mux: test.mux, options: ConnectionOptions(legacyMode: mode, transportCarriesFileDescriptors: false),
            now: now)
        var outcome = Outcome(written: [], delivered: [])
        func settle() {
            for _ in 0..<100 {
                var wrote = false
                while let action = machine.nextAction() {
                    switch action {
                    case let .write(bytes, _): outcome.written += bytes; wrote = true
                    case let .deliver(.payload(frame)): outcome.delivered.append(.frame(frame))
                    case let .deliver(.control(message, _)): outcome.delivered.append(.control(message))
                    case let .deliver(.legacyMessage(bytes)):
                        outcome.delivered.append(.legacy(ByteBuffer(bytes: bytes)))
                    default: break
                    }
                }
                now += .nanoseconds(1)
                if wrote { machine.outputWritten(remaining: 0, now: now); continue }
                if let deadline = machine.interest.deadline, deadline <= now { machine.tick(now: now); continue }
                return
            }
        }
        test.input.withUnsafeBytes { machine.receive(copying: $0, now: now) }
        settle()
        if test.endOfInput {
            now += .nanoseconds(1)
            machine.receiveEndOfInput(now: now)
            settle()
        }
        return outcome
    }

    static func configuration(_ test: Case) -> EndpointMuxConfiguration {
        EndpointMuxConfiguration(legacyMode: test.perMessage ? .perMessage(Fixtures.lines) : .reject)
    }

    static func nio(_ test: Case, decoder: Bool, byteByByte: Bool) throws -> Outcome {
        let channel = EmbeddedChannel()
        if decoder {
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(EndpointMuxDecoder(mux: test.mux, configuration: configuration(test))))
        } else {
            try channel.pipeline.syncOperations.addHandler(
                EndpointMuxHandler(mux: test.mux, configuration: configuration(test)))
        }
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/peer")).wait()
        let pieces = byteByByte ? test.input.map { [$0] } : [test.input]
        for piece in pieces where channel.isActive { try channel.writeInbound(Fixtures.buffer(piece)) }
        if test.endOfInput, channel.isActive {
            channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
        let outcome = Outcome(written: try channel.writtenBytes(), delivered: try channel.deliveredMessages())
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return outcome
    }

    @Test(arguments: cases) func handlerAndDecoderMatchTheEngine(_ test: Case) throws {
        let expected = Self.engine(test)
        for decoder in [false, true] {
            for byteByByte in [false, true] {
                let outcome = try Self.nio(test, decoder: decoder, byteByByte: byteByByte)
                #expect(outcome == expected, "\(decoder ? "decoder" : "handler") \(byteByByte ? "bytewise" : "whole")")
            }
        }
    }

    // MARK: The cases of issue 7, spelled out

    func epitaphParams(_ bytes: [UInt8]) throws -> JSONObject? {
        guard case let .notification(epitaph)? = try Fixtures.controlMessages(in: bytes).last,
            epitaph.method == "rpc.epitaph", case let .object(params)? = epitaph.params
        else { return nil }
        return params
    }

    @Test func jsonThatIsNotAnObjectGetsAnRPCEpitaph45() throws {
        let outcome = try Self.nio(Self.cases[0], decoder: false, byteByByte: false)
        let params = try epitaphParams(outcome.written)
        #expect(params?["status"] == .number(JSONNumber(Int(EpitaphStatus.invalidFrame.rawValue))))
        #expect(EpitaphStatus.invalidFrame.rawValue == -45)
    }

    @Test func objectWithoutIdGetsInvalidRequestWithNullId() throws {
        let outcome = try Self.nio(Self.cases[3], decoder: false, byteByByte: false)
        let written = try Fixtures.controlMessages(in: outcome.written)
        guard written.count == 1, case let .response(response) = written[0], case let .error(error) = response.outcome
        else { Issue.record("unexpected: \(written)"); return }
        #expect(response.id == .null)
        #expect(error.code == -32600)
        #expect(outcome.delivered == [.control(Self.request)])
    }

    @Test func newlineBeforeAFrameAfterControlTrafficIsSkipped() throws {
        let outcome = try Self.nio(Self.cases[4], decoder: false, byteByByte: true)
        #expect(outcome.written.isEmpty)
        #expect(outcome.delivered == [.control(Self.request), .frame(Fixtures.frame())])
    }

    @Test func jsonCutByHalfCloseGetsAnRPCEpitaph() throws {
        let outcome = try Self.nio(Self.cases[5], decoder: false, byteByByte: false)
        #expect(
            try epitaphParams(outcome.written)?["status"] == .number(JSONNumber(Int(EpitaphStatus.badState.rawValue))))
    }

    @Test func muxSettingsAreHonoured() throws {
        let off = try Self.nio(Self.cases[6], decoder: false, byteByByte: false)
        #expect(Epitaph(v1Frame: try Frame(parsingFrame: off.written))?.status == .invalidFrame)
        let limited = try Self.nio(Self.cases[7], decoder: false, byteByByte: false)
        #expect(
            try epitaphParams(limited.written)?["status"] == .number(JSONNumber(Int(EpitaphStatus.outOfRange.rawValue)))
        )
    }

    @Test func legacyHalfCloseAnswersEveryLineThenCloses() throws {
        let outcome = try Self.nio(Self.cases[12], decoder: false, byteByByte: false)
        #expect(outcome.delivered == [.legacy(Fixtures.buffer("SET a 1\n")), .legacy(Fixtures.buffer("GET a\n"))])
    }

    // MARK: Timers on the event loop's (synthetic) clock

    @Test func partialMessageTimeoutEndsWithTimedOutOnEmbeddedTime() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            EndpointMuxHandler(
                mux: Fixtures.mux(), configuration: EndpointMuxConfiguration(partialMessageTimeout: .seconds(1))))
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/peer")).wait()
        try channel.writeInbound(Fixtures.buffer([0x01, 0x10]))  // half a header
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(900))
        #expect(try channel.writtenBytes().isEmpty)
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(200))
        #expect(Epitaph(v1Frame: try Frame(parsingFrame: try channel.writtenBytes()))?.status == .timedOut)
        #expect(!channel.isActive)
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    @Test func lengthClosureLegacyDecoder() throws {
        let lines = EndpointMuxLegacyDecoder(length: { bytes in
            bytes.firstIndex(of: UInt8(ascii: "\n")).map { .complete($0 + 1) } ?? .needMoreBytes
        })
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            EndpointMuxHandler(
                mux: Fixtures.mux(), configuration: EndpointMuxConfiguration(legacyMode: .perMessage(lines))))
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/peer")).wait()
        try channel.writeInbound(Fixtures.buffer("A\nB"))
        try channel.writeInbound(Fixtures.buffer("C\n"))
        #expect(try channel.deliveredMessages() == [.legacy(Fixtures.buffer("A\n")), .legacy(Fixtures.buffer("BC\n"))])
        _ = try channel.finish()
    }
}
