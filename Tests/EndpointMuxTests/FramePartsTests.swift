import Testing
@_spi(Internals) @testable import EndpointMux

/// Big frames without copies: the three-part encoding and the payload taken over from the
/// receive buffer.
@Suite struct FramePartsTests {
    typealias Oracle = WireWriterDifferentialTests

    static func checkParts(
        _ frame: Frame, maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let expected = Oracle.framed(Oracle.packFrame(frame))
        let parts = try frame.encodedParts(maxBodyByteCount: maxBodyByteCount)
        #expect(parts.head + parts.payload + parts.tail == expected, sourceLocation: sourceLocation)
        #expect(parts.payload == frame.payload, sourceLocation: sourceLocation)
    }

    @Test func partsConcatenateToThePackedFrame() throws {
        var g = SplitMix64(seed: 0xBA75)
        for _ in 0..<1000 { try Self.checkParts(Oracle.frame(&g)) }
        let big = Oracle.bytes(1 << 20, &g)
        try Self.checkParts(
            Frame(
                kind: .response, payloadProtocol: 0x7A63, payload: big, requestID: 77,
                traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "k=v"))
        try Self.checkParts(Frame(payloadProtocol: 0x7A63))  // empty payload, empty tail
    }

    @Test func partsCheckTheCap() throws {
        let frame = Frame(payloadProtocol: 0x7A63, payload: [UInt8](repeating: 1, count: 100))
        let body = Oracle.packFrame(frame).count
        #expect(throws: FramingError.frameTooLarge(length: UInt64(body), limit: body - 1)) {
            try frame.encodedParts(maxBodyByteCount: body - 1)
        }
    }

    @Test func aBigFrameFillingTheBufferIsDeliveredFromItsStorage() throws {
        var g = SplitMix64(seed: 0x5107)
        for (count, traced) in [(Frame.separatePayloadByteCount, false), (300_000, true), (1 << 20, true)] {
            let payload = Oracle.bytes(count, &g)
            let frame = Frame(
                payloadProtocol: ConnectionStateMachineTests.lane, payload: payload, requestID: 5,
                traceparent: traced ? "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" : "",
                tracestate: traced ? "a=b" : "")
            let encoded = try frame.encoded()
            var h = ConnectionStateMachineTests.Harness()
            // In pieces, so the buffer grows from the header's announcement.
            var offset = 0
            while offset < encoded.count {
                let piece = min(encoded.count - offset, 70_000)
                h.receive(Array(encoded[offset..<(offset + piece)]))
                offset += piece
            }
            guard case let .payload(delivered)? = h.outputs.first else {
                Issue.record("no payload for \(count) bytes: \(h.outputs)")
                continue
            }
            #expect(delivered == payload)
            #expect(h.machine.bufferedByteCount == 0)
            #expect(h.machine.receiveStorageByteCount == 0, "the storage went with the payload")
        }
    }

    @Test func takingFromTheReceiveBufferMovesInPlace() {
        var buffer = ReceiveBuffer()
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        bytes.withUnsafeBytes { buffer.append($0) }
        let base = buffer.withUnsafeBytes { $0.baseAddress }
        let taken = buffer.take(37..<100_000)
        #expect(taken == Array(bytes[37...]))
        #expect(taken.withUnsafeBytes { $0.baseAddress } == base, "the storage itself, not a copy")
        #expect(buffer.isEmpty && buffer.capacity == 0)
    }

    @Test func aBigFrameFollowedByMoreInputIsCopiedOut() throws {
        var g = SplitMix64(seed: 0x5108)
        let payload = Oracle.bytes(200_000, &g)
        let first = try Frame(payloadProtocol: ConnectionStateMachineTests.lane, payload: payload, requestID: 1)
            .encoded()
        let second = try Frame(payloadProtocol: ConnectionStateMachineTests.lane, payload: [9], requestID: 2).encoded()
        var h = ConnectionStateMachineTests.Harness()
        h.receive(first + second)
        let payloads = h.outputs.compactMap { if case let .payload(p) = $0 { p } else { nil } }
        #expect(payloads == [payload, [9]])
        #expect(h.machine.receiveStorageByteCount == 0)
    }
}
