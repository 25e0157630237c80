@_spi(Internals) import EndpointMux
import LegacyAdaptersNIO
import NIOCore
import NIOEmbedded
import Testing

/// `EndpointMuxDecoder` inside a `ByteToMessageHandler`: the paths the verifier cannot
/// check (writes, failures, sticky passthrough), plus end-of-input handling.
@Suite struct EndpointMuxDecoderTests {
    func channel(
        configuration: EndpointMuxConfiguration = EndpointMuxConfiguration(), recorder: EventRecorder = EventRecorder()
    ) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(EndpointMuxDecoder(mux: Fixtures.mux(), configuration: configuration)))
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/peer")).wait()
        return channel
    }

    @Test func probeIsAnsweredAndFramesDecoded() throws {
        let channel = try channel()
        let probe = try Fixtures.probe()
        let frame = Fixtures.frame()
        try channel.writeInbound(Fixtures.buffer(try probe.frame.encoded() + frame.encoded()))
        #expect(try channel.writtenBytes() == (try ProbeResponder(identity: Fixtures.identity).answer(probe)))
        #expect(try channel.deliveredMessages() == [.frame(frame)])
        _ = try channel.finish()
    }

    @Test func badFrameWritesTheEpitaphAndDiscardsTheRest() throws {
        let recorder = EventRecorder()
        let channel = try channel(recorder: recorder)
        try channel.writeInbound(Fixtures.buffer(try Fixtures.frame(0xAD01).encoded() + Fixtures.frame().encoded()))
        let error = MuxError.unexpectedFirstPartyFrame(payloadProtocol: 0xAD01)
        #expect(try channel.writtenBytes() == (try error.epitaph.v1Frame().encoded()))
        #expect(try channel.deliveredMessages().isEmpty)
        #expect(recorder.events == [.failed(.epitaph(error.epitaph))])
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func stickyLegacyPassesEveryLaterByteThrough() throws {
        let recorder = EventRecorder()
        let channel = try channel(configuration: EndpointMuxConfiguration(legacyMode: .sticky), recorder: recorder)
        let frame = Fixtures.frame()
        try channel.writeInbound(Fixtures.buffer(try frame.encoded() + Array("OLD".utf8)))
        try channel.writeInbound(Fixtures.buffer(try Fixtures.frame().encoded()))
        let messages = try channel.deliveredMessages()
        #expect(messages.first == .frame(frame))
        var legacy: [UInt8] = []
        for case let .legacy(buffer) in messages.dropFirst() { legacy += buffer.readableBytesView }
        #expect(legacy == Array("OLD".utf8) + (try frame.encoded()))
        #expect(recorder.events == [.legacyTakeover])
        _ = try channel.finish()
    }

    @Test func controlMessageCutShortByEndOfInputGetsAnEpitaph() throws {
        let channel = try channel()
        try channel.writeInbound(Fixtures.buffer(#"{"jsonrpc":"2.0","met"#))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let written = try Fixtures.controlMessages(in: try channel.writtenBytes())
        guard written.count == 1, case let .notification(epitaph) = written[0],
            case let .object(params)? = epitaph.params
        else { Issue.record("unexpected: \(written)"); return }
        #expect(params["status"] == .number(JSONNumber(Int(EpitaphStatus.badState.rawValue))))
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func handlerAlsoReportsTruncationAtHalfClose() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(EndpointMuxHandler(mux: Fixtures.mux()))
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/peer")).wait()
        try channel.writeInbound(Fixtures.buffer("  {\"jsonrpc\""))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let written = try Fixtures.controlMessages(in: try channel.writtenBytes())
        #expect(written.map(\.method) == ["rpc.epitaph"])
        #expect(!channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
