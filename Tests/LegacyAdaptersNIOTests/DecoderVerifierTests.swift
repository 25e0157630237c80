@_spi(Internals) import EndpointMux
import LegacyAdaptersNIO
import NIOCore
import NIOTestUtils
import Testing

/// `ByteToMessageDecoderVerifier` feeds each stream whole, byte by byte, and many
/// messages at once, in shuffled orders, into one decoder: `EndpointMuxDecoder` must
/// produce the same messages every way.
@Suite struct DecoderVerifierTests {
    typealias Pair = (ByteBuffer, [EndpointMuxMessage])

    func framePairs() throws -> [Pair] {
        let frames = [
            Fixtures.frame(),
            Fixtures.frame(kind: .response, payload: [], requestID: 0),
            Fixtures.frame(kind: .event, payload: Array(repeating: 0x5A, count: 1000), requestID: 99),
            Frame(
                kind: .request, payloadProtocol: Fixtures.lane, payload: [0x01, 0x00, 0x7B],
                requestID: .max, deadlineUnixMilliseconds: 12345,
                traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "k=v"),
        ]
        return try frames.map { (Fixtures.buffer(try $0.encoded()), [.frame($0)]) }
    }

    func controlPairs() -> [Pair] {
        let messages: [ControlMessage] = [
            .request(ControlRequest(method: "status", params: .object(["verbose": .bool(true)]), id: 1)),
            .request(ControlRequest(method: "ping", id: "abc")),
            .notification(ControlNotification(method: "log", params: .array([.string("x"), .number(2)]))),
            .response(ControlResponse(id: 5, result: .null)),
            .response(ControlResponse(id: 6, error: .methodNotFound())),
        ]
        var pairs = messages.map { (Fixtures.buffer($0.encoded()), [EndpointMuxMessage.control($0)]) }
        // Leading whitespace belongs to the message; a pretty-printed message is fine.
        let pretty = "\n  {\n \"jsonrpc\": \"2.0\",\r\n\t\"method\": \"reload\"\n}"
        pairs.append((Fixtures.buffer(pretty), [.control(.notification(ControlNotification(method: "reload")))]))
        // `fds: 0` is no file descriptor at all.
        let zero = #"{"jsonrpc":"2.0","method":"noop","id":9,"fds":0}"#
        pairs.append((Fixtures.buffer(zero), [.control(.request(ControlRequest(method: "noop", id: 9)))]))
        return pairs
    }

    func legacyPairs() -> [Pair] {
        ["HELLO\n", "GET / HTTP/1.1\n", "x\n", "{not json here\n"].map {
            (Fixtures.buffer($0), [.legacy(Fixtures.buffer($0))])
        }
    }

    @Test func framesOnly() throws {
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: try framePairs()) {
            EndpointMuxDecoder(mux: Fixtures.mux())
        }
    }

    @Test func controlMessagesOnly() throws {
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: controlPairs()) {
            EndpointMuxDecoder(mux: Fixtures.mux())
        }
    }

    @Test func perMessageLegacyOnly() throws {
        let configuration = EndpointMuxConfiguration(
            legacyMode: .perMessage(Fixtures.lines),
            acceptsControlMessages: false)
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: legacyPairs()) {
            EndpointMuxDecoder(mux: Fixtures.mux(), configuration: configuration)
        }
    }

    @Test func framesControlAndLegacyInterleaved() throws {
        // With control messages on, `{` starts JSON: keep legacy lines that do not.
        let legacy = legacyPairs().filter { $0.0.readableBytesView.first != UInt8(ascii: "{") }
        let configuration = EndpointMuxConfiguration(legacyMode: .perMessage(Fixtures.lines))
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: try framePairs() + controlPairs() + legacy) {
            EndpointMuxDecoder(mux: Fixtures.mux(), configuration: configuration)
        }
    }

    @Test func legacyDetectorWinsOverFramingByte() throws {
        // A legacy protocol whose messages may begin with 0x01: the detector claims them.
        let detector = LegacyDetector { raw in
            raw[0] == 0x01 && raw.count < 2
                ? .needMoreBytes
                : (raw[0] == 0x01 && raw[1] == 0xEE ? .legacy : .notLegacy)
        }
        let legacyMessage: [UInt8] = [0x01, 0xEE, 0x41, 0x0A]
        let pairs: [Pair] =
            try framePairs() + [
                (Fixtures.buffer(legacyMessage), [.legacy(Fixtures.buffer(legacyMessage))])
            ]
        let configuration = EndpointMuxConfiguration(legacyMode: .perMessage(Fixtures.lines))
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            EndpointMuxDecoder(mux: Fixtures.mux(detector: detector), configuration: configuration)
        }
    }
}
