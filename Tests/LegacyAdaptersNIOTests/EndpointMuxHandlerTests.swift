@_spi(Internals) import EndpointMux
import LegacyAdaptersNIO
import NIOCore
import NIOEmbedded
import Testing

/// `EndpointMuxHandler` at the front of an `EmbeddedChannel` pipeline.
@Suite struct EndpointMuxHandlerTests {
    func channel(
        mux: EndpointMux = Fixtures.mux(), configuration: EndpointMuxConfiguration = EndpointMuxConfiguration(),
        after handlers: [any ChannelHandler] = []
    ) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(EndpointMuxHandler(mux: mux, configuration: configuration))
        for handler in handlers { try channel.pipeline.syncOperations.addHandler(handler) }
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/peer")).wait()
        return channel
    }

    // MARK: Probes and frames

    @Test func probeIsAnsweredByteExactly() throws {
        let channel = try channel()
        let probe = try Fixtures.probe()
        let bytes = try probe.frame.encoded()
        // In three reads, the header split.
        try channel.writeInbound(Fixtures.buffer(bytes[..<3]))
        #expect(try channel.writtenBytes().isEmpty)
        try channel.writeInbound(Fixtures.buffer(bytes[3..<20]))
        try channel.writeInbound(Fixtures.buffer(bytes[20...]))
        let expected = try ProbeResponder(identity: Fixtures.identity).answer(probe)
        #expect(try channel.writtenBytes() == expected)
        #expect(try channel.deliveredMessages().isEmpty)
        #expect(channel.isActive)
        // Two probes in one read: two answers, in order.
        let second = try Fixtures.probe(nonce: Array(200..<232))
        try channel.writeInbound(Fixtures.buffer(bytes + (try second.frame.encoded())))
        #expect(
            try channel.writtenBytes()
                == expected + (try ProbeResponder(identity: Fixtures.identity).answer(second)))
        _ = try channel.finish()
    }

    @Test func framesAreForwardedAndRepliesPassThrough() throws {
        let echo = FrameEcho()
        let channel = try channel(after: [echo])
        let first = Fixtures.frame(payload: Array("one".utf8), requestID: 1)
        let second = Fixtures.frame(kind: .event, payload: Array(repeating: 9, count: 5000), requestID: 2)
        let third = Fixtures.frame(payload: [], requestID: 3)
        let stream = try first.encoded() + second.encoded() + third.encoded()
        let cut = stream.count - 4
        try channel.writeInbound(Fixtures.buffer(stream[..<cut]))
        #expect(echo.received == [first, second])
        try channel.writeInbound(Fixtures.buffer(stream[cut...]))
        #expect(echo.received == [first, second, third])
        let replies = try [first, second, third].flatMap { try $0.response(payload: $0.payload).encoded() }
        #expect(try channel.writtenBytes() == replies)
        _ = try channel.finish()
    }

    // MARK: Sticky legacy

    @Test func stickyLegacyForwardsExactBytesAndRemovesTheHandler() throws {
        let collector = LegacyCollector()
        let channel = try channel(
            mux: Fixtures.mux(detector: Fixtures.magicDetector),
            configuration: EndpointMuxConfiguration(legacyMode: .sticky), after: [collector])
        // The detector needs six bytes: the first reads are held, untouched.
        let reads: [[UInt8]] = [
            Array("LE".utf8), Array("GAC".utf8), Array("Y hello\n".utf8),
            [0x01, 0x05, 0x00, 0x00, 0x00], Array("{\"jsonrpc\":\"2.0\"}".utf8), Array(" world\n".utf8),
        ]
        try channel.writeInbound(Fixtures.buffer(reads[0]))
        try channel.writeInbound(Fixtures.buffer(reads[1]))
        #expect(collector.bytes.isEmpty)
        try channel.writeInbound(Fixtures.buffer(reads[2]))
        #expect(collector.sawTakeover)
        #expect(collector.bytes == reads[0...2].flatMap { $0 })
        #expect(throws: (any Error).self) {
            try channel.pipeline.syncOperations.context(handlerType: EndpointMuxHandler.self)
        }
        // After the switch, bytes that look like frames or JSON go on untouched.
        for read in reads[3...] { try channel.writeInbound(Fixtures.buffer(read)) }
        #expect(collector.bytes == reads.flatMap { $0 })
        #expect(try channel.writtenBytes().isEmpty)
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test func stickyLegacyAfterFramesKeepsOrder() throws {
        let recorder = EventRecorder()
        let channel = try channel(configuration: EndpointMuxConfiguration(legacyMode: .sticky), after: [recorder])
        let frame = Fixtures.frame()
        let legacy = Array("PLAIN OLD PROTOCOL\n".utf8)
        try channel.writeInbound(Fixtures.buffer(try frame.encoded() + legacy[..<5]))
        try channel.writeInbound(Fixtures.buffer(legacy[5...]))
        #expect(try channel.readInbound(as: EndpointMuxMessage.self) == .frame(frame))
        var forwarded: [UInt8] = []
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { forwarded += buffer.readableBytesView }
        #expect(forwarded == legacy)
        #expect(recorder.events == [.legacyTakeover])
        _ = try channel.finish()
    }

    // MARK: Per-message legacy

    @Test func perMessageLegacyInterleavesWithFramesAndControl() throws {
        let frame = Fixtures.frame(requestID: 11)
        let control = ControlMessage.request(ControlRequest(method: "status", id: 3))
        let probe = try Fixtures.probe()
        let stream =
            Array("PING\n".utf8) + (try frame.encoded()) + Array("PONG 2\n".utf8)
            + control.encoded() + (try probe.frame.encoded()) + Array("BYE\n".utf8)
        // Every split point of the stream into two reads gives the same messages.
        for cut in stride(from: 0, through: stream.count, by: 7) {
            let channel = try channel(configuration: EndpointMuxConfiguration(legacyMode: .perMessage(Fixtures.lines)))
            try channel.writeInbound(Fixtures.buffer(stream[..<cut]))
            try channel.writeInbound(Fixtures.buffer(stream[cut...]))
            #expect(
                try channel.deliveredMessages() == [
                    .legacy(Fixtures.buffer("PING\n")), .frame(frame), .legacy(Fixtures.buffer("PONG 2\n")),
                    .control(control), .legacy(Fixtures.buffer("BYE\n")),
                ], "cut at \(cut)")
            #expect(try channel.writtenBytes() == (try ProbeResponder(identity: Fixtures.identity).answer(probe)))
            _ = try channel.finish()
        }
    }

    @Test func perMessageLegacyIsCapped() throws {
        let recorder = EventRecorder()
        let channel = try channel(
            configuration: EndpointMuxConfiguration(
                legacyMode: .perMessage(Fixtures.lines),
                maxLegacyMessageByteCount: 64),
            after: [recorder])
        try channel.writeInbound(Fixtures.buffer(Array(repeating: UInt8(ascii: "a"), count: 65)))
        #expect(recorder.events == [.failed(.legacyMessageTooLarge(limit: 64))])
        #expect(try channel.writtenBytes().isEmpty)  // legacy peers get no epitaph
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func legacyDecoderWithoutProgressEndsTheConnection() throws {
        let stuck = EndpointMuxLegacyDecoder { buffer in buffer.getSlice(at: buffer.readerIndex, length: 1) }
        let recorder = EventRecorder()
        let channel = try channel(
            configuration: EndpointMuxConfiguration(legacyMode: .perMessage(stuck)),
            after: [recorder])
        try channel.writeInbound(Fixtures.buffer("abc"))
        guard case .failed(.legacyDecoderFailed)? = recorder.events.first else {
            Issue.record("no failure: \(recorder.events)"); return
        }
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    // MARK: Control messages

    @Test func controlMessagesAreDelivered() throws {
        let channel = try channel()
        let request = ControlMessage.request(ControlRequest(method: "status", params: .object([:]), id: 1))
        let notification = ControlMessage.notification(ControlNotification(method: "tick"))
        let bytes = request.encoded() + Array(" \n".utf8) + notification.encoded()
        for byte in bytes { try channel.writeInbound(Fixtures.buffer([byte])) }
        #expect(try channel.deliveredMessages() == [.control(request), .control(notification)])
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test func requestWithFileDescriptorsGetsErrorThenEpitaphThenClose() throws {
        let recorder = EventRecorder()
        let channel = try channel(after: [recorder])
        let text = #"{"jsonrpc":"2.0","method":"open","params":{"path":"/x"},"id":7,"fds":2}"#
        try channel.writeInbound(Fixtures.buffer(text))
        #expect(try channel.deliveredMessages().isEmpty)
        let written = try Fixtures.controlMessages(in: try channel.writtenBytes())
        #expect(written.count == 2)
        guard written.count == 2, case let .response(response) = written[0],
            case let .error(error) = response.outcome, case let .notification(epitaph) = written[1]
        else { Issue.record("unexpected replies: \(written)"); return }
        #expect(response.id == 7)
        #expect(error.code == -32050)
        #expect(epitaph.method == "rpc.epitaph")
        guard case let .object(params)? = epitaph.params else { Issue.record("no params"); return }
        // SwiftNIO cannot receive fds: the engine ends it at once as NOT_SUPPORTED.
        #expect(params["status"] == .number(JSONNumber(Int(EpitaphStatus.notSupported.rawValue))))
        #expect(params["code"] == .number(-32050))
        guard case let .failed(.epitaph(sent))? = recorder.events.first else {
            Issue.record("no failure: \(recorder.events)"); return
        }
        #expect(sent.status == .notSupported)
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func notificationWithFileDescriptorsGetsOnlyTheEpitaph() throws {
        let channel = try channel()
        try channel.writeInbound(Fixtures.buffer(#"{"jsonrpc":"2.0","method":"push","fds":1}"#))
        let written = try Fixtures.controlMessages(in: try channel.writtenBytes())
        #expect(written.map(\.method) == ["rpc.epitaph"])
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func badJSONGetsAnEpitaph() throws {
        let channel = try channel()
        try channel.writeInbound(Fixtures.buffer(#"{"jsonrpc":"2.0","method":}"#))
        let written = try Fixtures.controlMessages(in: try channel.writtenBytes())
        guard written.count == 1, case let .notification(epitaph) = written[0],
            case let .object(params)? = epitaph.params
        else { Issue.record("unexpected: \(written)"); return }
        #expect(epitaph.method == "rpc.epitaph")
        #expect(params["status"] == .number(JSONNumber(Int(EpitaphStatus.invalidFrame.rawValue))))
        #expect(params["code"] == .number(-32050))
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func invalidJSONRPCIsAnsweredAndTheConnectionGoesOn() throws {
        let channel = try channel()
        let valid = ControlMessage.notification(ControlNotification(method: "ok"))
        try channel.writeInbound(
            Fixtures.buffer(Array(#"{"jsonrpc":"1.0","method":"x","id":4}"#.utf8) + valid.encoded()))
        let written = try Fixtures.controlMessages(in: try channel.writtenBytes())
        guard written.count == 1, case let .response(response) = written[0], case let .error(error) = response.outcome
        else { Issue.record("unexpected: \(written)"); return }
        #expect(response.id == 4)
        #expect(error.code == -32600)
        #expect(try channel.deliveredMessages() == [.control(valid)])
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test func controlMessagesOffMakeBraceLegacy() throws {
        let channel = try channel(
            configuration: EndpointMuxConfiguration(
                legacyMode: .perMessage(Fixtures.lines), acceptsControlMessages: false))
        try channel.writeInbound(Fixtures.buffer("{\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n"))
        #expect(
            try channel.deliveredMessages() == [.legacy(Fixtures.buffer("{\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n"))])
        _ = try channel.finish()
    }

    // MARK: Errors

    @Test func badFrameGetsAV1EpitaphThenClose() throws {
        let recorder = EventRecorder()
        let channel = try channel(after: [recorder])
        let unserved = try Fixtures.frame(0x7C4C).encoded()
        try channel.writeInbound(Fixtures.buffer(unserved + Array("trailing bytes are dropped".utf8)))
        let error = MuxError.unservedPayloadProtocol(payloadProtocol: 0x7C4C)
        let written = try channel.writtenBytes()
        #expect(written == (try error.epitaph.v1Frame(lane: .defaultEpitaph).encoded()))
        let epitaph = Epitaph(v1Frame: try Frame(parsingFrame: written))
        #expect(epitaph?.status == .notSupported)
        #expect(recorder.events == [.failed(.epitaph(error.epitaph))])
        #expect(try channel.deliveredMessages().isEmpty)
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func undecodableFrameBodyGetsInvalidFrameEpitaph() throws {
        let channel = try channel(configuration: EndpointMuxConfiguration(epitaphLane: 0xF00D))
        // A 3-byte body holding an unterminated varint.
        try channel.writeInbound(Fixtures.buffer([0x01, 0x03, 0x00, 0x00, 0x00, 0x08, 0xFF, 0xFF]))
        let frame = try Frame(parsingFrame: try channel.writtenBytes())
        #expect(frame.payloadProtocol == 0xF00D)
        #expect(Epitaph(v1Frame: frame, lane: 0xF00D)?.status == .invalidFrame)
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func oversizedFrameIsRefusedBeforeItsBodyArrives() throws {
        let channel = try channel(mux: Fixtures.mux(limits: MuxLimits(maxFrameBodyByteCount: 1024)))
        try channel.writeInbound(Fixtures.buffer([0x01, 0x01, 0x04, 0x00, 0x00]))  // 1025 bytes announced
        let epitaph = Epitaph(v1Frame: try Frame(parsingFrame: try channel.writtenBytes()))
        #expect(epitaph?.status == .outOfRange)
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func rejectModeAnswersLegacyWithAnEpitaph() throws {
        let channel = try channel()
        try channel.writeInbound(Fixtures.buffer("GET / HTTP/1.1\r\n"))
        let epitaph = Epitaph(v1Frame: try Frame(parsingFrame: try channel.writtenBytes()))
        #expect(epitaph?.status == .invalidFrame)
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func noEpitaphAfterTheConnectionSpokeLegacy() throws {
        let channel = try channel(configuration: EndpointMuxConfiguration(legacyMode: .perMessage(Fixtures.lines)))
        try channel.writeInbound(Fixtures.buffer(Array("HELLO\n".utf8) + (try Fixtures.frame(0x7C4C).encoded())))
        #expect(try channel.deliveredMessages() == [.legacy(Fixtures.buffer("HELLO\n"))])
        #expect(try channel.writtenBytes().isEmpty)
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func encodingHelpersWriteWireBytes() throws {
        var buffer = ByteBuffer()
        let frame = Fixtures.frame()
        let written = try buffer.writeV1Frame(frame)
        #expect(Array(buffer.readableBytesView) == (try frame.encoded()))
        #expect(written == buffer.readableBytes)
        let tooLarge = #expect(throws: EndpointMuxError.self) {
            try buffer.writeV1Frame(Fixtures.frame(payload: Array(repeating: 0, count: 100)), maxBodyByteCount: 10)
        }
        #expect(tooLarge?.code == .limitExceeded)
        #expect(buffer.readableBytes == written)
        var json = ByteBuffer()
        let message = ControlMessage.response(ControlResponse(id: 1, result: .string("ok")))
        json.writeControlMessage(message)
        #expect(Array(json.readableBytesView) == message.encoded())
    }
}

/// Answers every frame with a RESPONSE echoing its payload, written as a `ByteBuffer`.
final class FrameEcho: ChannelInboundHandler {
    typealias InboundIn = EndpointMuxMessage
    typealias OutboundOut = ByteBuffer
    private(set) var received: [Frame] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .frame(frame):
            received.append(frame)
            var reply = context.channel.allocator.buffer(capacity: frame.payload.count + 32)
            do {
                try reply.writeV1Frame(frame.response(payload: frame.payload))
                context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
            } catch {
                context.close(promise: nil)
            }
        case let .control(.request(request)):
            var reply = context.channel.allocator.buffer(capacity: 64)
            reply.writeControlMessage(.response(ControlResponse(id: request.id, result: .string(request.method))))
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        case .control, .legacy:
            break
        }
    }
}
