@_spi(Internals) import EndpointMux
import LegacyAdaptersNIO
import NIOCore
import NIOEmbedded
import Testing

/// Shared fixtures: a fixed identity, a served lane, a line-based legacy protocol.
enum Fixtures {
    static let lane: PayloadProtocol = 0x7A63

    static let identity = DaemonIdentity(
        pid: 4242,
        executablePath: "/opt/exampled/bin/exampled",
        executableHash: Array(repeating: 0xAB, count: 32),
        bootID: "0b3c2a8e-58f1-4c53-9d7e-2f4b1a9c6d10",
        endpoint: IPCEndpoint(namespaceID: "exampled", path: "/tmp/exampled.sock"),
        startedAtUnixMilliseconds: 1_795_286_673_302)

    static func mux(detector: LegacyDetector = .never, limits: MuxLimits = MuxLimits()) -> EndpointMux {
        EndpointMux(identity: identity, servedProtocols: [lane], legacyDetector: detector, limits: limits)
    }

    /// Newline-delimited legacy messages (the newline included).
    static let lines = EndpointMuxLegacyDecoder { buffer in
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        return buffer.readSlice(length: newline - buffer.readerIndex + 1)
    }

    /// A detector for a protocol whose messages start with the magic `LEGACY`.
    static let magicDetector = LegacyDetector { raw in
        let magic = Array("LEGACY".utf8)
        let n = min(raw.count, magic.count)
        for i in 0..<n where raw[i] != magic[i] { return .notLegacy }
        return n == magic.count ? .legacy : .needMoreBytes
    }

    static func frame(
        _ lane: PayloadProtocol = lane, kind: FrameKind = .request, payload: [UInt8] = Array("hi".utf8),
        requestID: UInt64 = 7
    ) -> Frame {
        Frame(kind: kind, payloadProtocol: lane, payload: payload, requestID: requestID)
    }

    static func bytes(_ frame: Frame) throws -> [UInt8] { try frame.encoded() }

    static func probe(nonce: [UInt8] = Array(100..<132)) throws -> ProbeRequest {
        try ProbeRequest(nonce: nonce)
    }

    static func buffer(_ bytes: some Sequence<UInt8>) -> ByteBuffer { ByteBuffer(bytes: Array(bytes)) }
    static func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    /// Decodes concatenated JSON-RPC messages (as written to the peer).
    static func controlMessages(in bytes: [UInt8]) throws -> [ControlMessage] {
        var decoder = ControlDecoder()
        var rest = bytes
        var messages: [ControlMessage] = []
        while true {
            let step = try rest.withUnsafeBytes { raw in
                try decoder.decode(raw, queuedFileDescriptors: 0, endOfInput: true)
            }
            switch step {
            case let .message(message, _, consumed):
                messages.append(message)
                rest.removeFirst(consumed)
            case .endOfStream, .needMoreBytes, .needMoreFileDescriptors, .invalid:
                return messages
            }
        }
    }
}

extension EmbeddedChannel {
    /// Every byte written to the peer so far.
    func writtenBytes() throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try readOutbound(as: ByteBuffer.self) {
            bytes += buffer.readableBytesView
        }
        return bytes
    }

    /// Every message delivered to the end of the pipeline so far.
    func deliveredMessages() throws -> [EndpointMuxMessage] {
        var messages: [EndpointMuxMessage] = []
        while let message = try readInbound(as: EndpointMuxMessage.self) { messages.append(message) }
        return messages
    }
}

/// Records the mux's user events and passes everything on.
final class EventRecorder: ChannelInboundHandler {
    typealias InboundIn = Never
    private(set) var events: [EndpointMuxEvent] = []

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? EndpointMuxEvent { events.append(event) }
        context.fireUserInboundEventTriggered(event)
    }
}

/// A daemon's legacy handler: collects the raw bytes it receives.
final class LegacyCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private(set) var bytes: [UInt8] = []
    private(set) var reads = 0
    private(set) var sawTakeover = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytes += unwrapInboundIn(data).readableBytesView
        reads += 1
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .legacyTakeover? = event as? EndpointMuxEvent { sawTakeover = true }
        context.fireUserInboundEventTriggered(event)
    }
}
