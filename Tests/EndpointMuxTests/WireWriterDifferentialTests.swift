import CProtobuf
import Testing
@_spi(Internals) @testable import EndpointMux

/// The hand-written protobuf writer (`ProtobufWireWriter`, used by `Frame`, `Epitaph` and
/// `ProbeResponder`) must produce exactly the bytes libprotobuf-c's `pack` produces: the
/// oracle here packs the same values with the generated C, as the encoders did before.
@Suite struct WireWriterDifferentialTests {
    // MARK: Oracle (libprotobuf-c)

    /// The `Frame` body as libprotobuf-c packs it.
    static func packFrame(_ frame: Frame) -> [UInt8] {
        var message = Endpointmux__V1__Frame()
        endpointmux__v1__frame__init(&message)
        message.envelope_version = frame.envelopeVersion
        message.kind = Endpointmux__V1__FrameKind(rawValue: .init(truncatingIfNeeded: frame.kind.rawValue))
        message.payload_protocol = frame.payloadProtocol.rawValue
        message.request_id = frame.requestID
        message.payload_encoding = Endpointmux__V1__PayloadEncoding(
            rawValue: .init(truncatingIfNeeded: frame.payloadEncoding.rawValue))
        message.deadline_unix_ms = frame.deadlineUnixMilliseconds
        return frame.payload.withUnsafeBufferPointer { payload in
            frame.traceparent.withCString { traceparent in
                frame.tracestate.withCString { tracestate in
                    message.payload = ProtobufCBinaryData(
                        len: payload.count, data: UnsafeMutablePointer(mutating: payload.baseAddress))
                    message.traceparent = UnsafeMutablePointer(mutating: traceparent)
                    message.tracestate = UnsafeMutablePointer(mutating: tracestate)
                    let size = endpointmux__v1__frame__get_packed_size(&message)
                    return [UInt8](unsafeUninitializedCapacity: size) { out, count in
                        count = out.baseAddress.map { endpointmux__v1__frame__pack(&message, $0) } ?? 0
                    }
                }
            }
        }
    }

    /// An `Epitaph` message as libprotobuf-c packs it.
    static func packEpitaph(_ epitaph: Epitaph) -> [UInt8] {
        var message = Endpointmux__V1__Epitaph()
        endpointmux__v1__epitaph__init(&message)
        message.status = epitaph.status.rawValue
        return epitaph.reason.withCString { reason in
            message.reason = UnsafeMutablePointer(mutating: reason)
            let size = endpointmux__v1__epitaph__get_packed_size(&message)
            return [UInt8](unsafeUninitializedCapacity: size) { out, count in
                count = out.baseAddress.map { endpointmux__v1__epitaph__pack(&message, $0) } ?? 0
            }
        }
    }

    /// The 5-byte v1 header for `body`, then `body`.
    static func framed(_ body: [UInt8]) -> [UInt8] {
        let n = UInt32(body.count)
        return [
            0x01, UInt8(truncatingIfNeeded: n), UInt8(truncatingIfNeeded: n >> 8),
            UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 24),
        ] + body
    }

    // MARK: Random values

    static let interestingU32: [UInt32] = [
        0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 0xB232, 0xFFFF, 0x1F_FFFF, 0x20_0000, 0x0FFF_FFFF, 0x1000_0000, .max,
    ]
    static let interestingI32: [Int32] = [0, 1, 2, 3, 4, 0x7F, 0x80, 1000, .max, -1, -2, -128, -129, .min]
    static let interestingU64: [UInt64] = [0, 1, 0x7F, 0x80, 1 << 35, (1 << 56) - 1, 1 << 56, 1 << 63, .max]

    static func u32(_ g: inout SplitMix64) -> UInt32 {
        Bool.random(using: &g)
            ? interestingU32.randomElement(using: &g) ?? 0
            : UInt32(truncatingIfNeeded: g.next() >> UInt64.random(in: 0...63, using: &g))
    }

    static func i32(_ g: inout SplitMix64) -> Int32 {
        Bool.random(using: &g)
            ? interestingI32.randomElement(using: &g) ?? 0
            : Int32(truncatingIfNeeded: Int64(bitPattern: g.next()) >> Int64.random(in: 0...63, using: &g))
    }

    static func u64(_ g: inout SplitMix64) -> UInt64 {
        Bool.random(using: &g)
            ? interestingU64.randomElement(using: &g) ?? 0 : g.next() >> UInt64.random(in: 0...63, using: &g)
    }

    /// Strings of every shape the writer must handle: empty, ASCII, multi-byte UTF-8,
    /// embedded NULs (libprotobuf-c stops there), lengths around the 1-byte length limit.
    static func string(_ g: inout SplitMix64) -> String {
        let alphabet: [String] = ["a", "z", "0", "-", "é", "✓", "😀", "\u{0}", " ", "/", "=", ","]
        switch Int.random(in: 0..<6, using: &g) {
        case 0: return ""
        case 1: return "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        case 2: return String(repeating: "k", count: Int.random(in: 120...135, using: &g))
        case 3: return "vendor=\u{0}hidden"
        default:
            let count = Int.random(in: 0...40, using: &g)
            return (0..<count).map { _ in alphabet.randomElement(using: &g) ?? "a" }.joined()
        }
    }

    static func bytes(_ count: Int, _ g: inout SplitMix64) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    static func frame(_ g: inout SplitMix64) -> Frame {
        // Sizes around the inline small-copy path (16…64 bytes) as well.
        let payloadCount =
            [
                0, 1, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 127, 128,
                Int.random(in: 0...600, using: &g), Int.random(in: 0...600, using: &g),
                16_383, 16_384,
            ].randomElement(using: &g) ?? 0
        // A third without trace fields: the encoders' trace-less fast path.
        let traced = Int.random(in: 0..<3, using: &g) != 0
        return Frame(
            envelopeVersion: u32(&g), kind: FrameKind(rawValue: i32(&g)),
            payloadProtocol: PayloadProtocol(rawValue: u32(&g)),
            payload: bytes(payloadCount, &g), requestID: u64(&g), payloadEncoding: PayloadEncoding(rawValue: i32(&g)),
            deadlineUnixMilliseconds: u64(&g), traceparent: traced ? string(&g) : "",
            tracestate: traced ? string(&g) : "")
    }

    // MARK: Frames

    /// Every way to encode `frame` against the oracle.
    static func checkFrame(
        _ frame: Frame, maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let body = packFrame(frame)
        #expect(frame.encodedBody() == body, "encodedBody of \(frame.envelopeSummary)", sourceLocation: sourceLocation)
        let expected = framed(body)
        #expect(frame.encodedByteCount == expected.count, sourceLocation: sourceLocation)
        #expect(
            try frame.encoded(maxBodyByteCount: maxBodyByteCount) == expected, "encoded", sourceLocation: sourceLocation
        )
        var buffer: [UInt8] = [0xEE, 0xEF]
        #expect(throws: Never.self) { try frame.encode(into: &buffer, maxBodyByteCount: maxBodyByteCount) }
        #expect(buffer == [0xEE, 0xEF] + expected, "encode(into:)", sourceLocation: sourceLocation)
        // Appending to a buffer whose capacity already suffices.
        var roomy: [UInt8] = []
        roomy.reserveCapacity(expected.count + 16)
        #expect(throws: Never.self) { try frame.encode(into: &roomy, maxBodyByteCount: maxBodyByteCount) }
        #expect(roomy == expected, "encode(into:) with capacity", sourceLocation: sourceLocation)
    }

    @Test func randomFramesMatchLibprotobufC() throws {
        var g = SplitMix64(seed: 0xF7A3_E001)
        for _ in 0..<3000 { try Self.checkFrame(Self.frame(&g)) }
    }

    @Test func everyFieldAloneMatches() throws {
        var g = SplitMix64(seed: 11)
        for _ in 0..<50 {
            try Self.checkFrame(Frame(envelopeVersion: Self.u32(&g), kind: .request, payloadProtocol: 0))
            try Self.checkFrame(Frame(envelopeVersion: 0, kind: FrameKind(rawValue: Self.i32(&g)), payloadProtocol: 0))
            try Self.checkFrame(Frame(envelopeVersion: 0, payloadProtocol: PayloadProtocol(rawValue: Self.u32(&g))))
            try Self.checkFrame(
                Frame(
                    envelopeVersion: 0, payloadProtocol: 0, payload: Self.bytes(Int.random(in: 0...300, using: &g), &g))
            )
            try Self.checkFrame(Frame(envelopeVersion: 0, payloadProtocol: 0, requestID: Self.u64(&g)))
            try Self.checkFrame(
                Frame(envelopeVersion: 0, payloadProtocol: 0, payloadEncoding: PayloadEncoding(rawValue: Self.i32(&g))))
            try Self.checkFrame(Frame(envelopeVersion: 0, payloadProtocol: 0, deadlineUnixMilliseconds: Self.u64(&g)))
            try Self.checkFrame(Frame(envelopeVersion: 0, payloadProtocol: 0, traceparent: Self.string(&g)))
            try Self.checkFrame(Frame(envelopeVersion: 0, payloadProtocol: 0, tracestate: Self.string(&g)))
        }
        // All defaults: the empty body.
        try Self.checkFrame(Frame(envelopeVersion: 0, payloadProtocol: 0))
        #expect(Frame(envelopeVersion: 0, payloadProtocol: 0).encodedBody().isEmpty)
    }

    @Test func unknownKindsAndEncodingsMatch() throws {
        for raw in Self.interestingI32 + [4, 5, 99, -3, -1_000_000] {
            try Self.checkFrame(
                Frame(kind: FrameKind(rawValue: raw), payloadProtocol: 0x7A63, payload: [1, 2, 3], requestID: 9))
            try Self.checkFrame(
                Frame(payloadProtocol: 0x7A63, payload: [1], payloadEncoding: PayloadEncoding(rawValue: raw)))
        }
    }

    @Test func largePayloadsMatch() throws {
        var g = SplitMix64(seed: 16)
        let sixteen = Self.bytes(16 * 1024 * 1024, &g)
        let frame = Frame(
            kind: .response, payloadProtocol: 0x7A63, payload: sixteen, requestID: .max,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "a=b")
        // A 16 MiB payload makes a body above the default cap: encoded with a larger one…
        try Self.checkFrame(frame, maxBodyByteCount: 32 * 1024 * 1024)
        // …and refused, with the buffer untouched, under the default cap.
        let bodyCount = Self.packFrame(frame).count
        #expect(throws: FramingError.frameTooLarge(length: UInt64(bodyCount), limit: V1Framing.defaultMaxBodyByteCount))
        {
            try frame.encoded()
        }
        var buffer: [UInt8] = [7]
        #expect(throws: FramingError.self) { try frame.encode(into: &buffer) }
        #expect(buffer == [7])
        // The largest payload that fits the default cap exactly.
        var fitting = Frame(payloadProtocol: 0x7A63, payload: [])
        // Overhead: envelope 2, lane 4 (0x7A63), payload tag 1 + 4-byte length.
        fitting.payload = Array(sixteen[..<(V1Framing.defaultMaxBodyByteCount - 2 - 4 - 1 - 4)])
        #expect(fitting.encodedByteCount == V1Framing.headerByteCount + V1Framing.defaultMaxBodyByteCount)
        try Self.checkFrame(fitting)
    }

    @Test func capsAreChecked() throws {
        let frame = Frame(payloadProtocol: 0x7A63, payload: [UInt8](repeating: 1, count: 100))
        let body = Self.packFrame(frame).count
        #expect(try frame.encoded(maxBodyByteCount: body).count == body + 5)
        #expect(throws: FramingError.frameTooLarge(length: UInt64(body), limit: body - 1)) {
            try frame.encoded(maxBodyByteCount: body - 1)
        }
    }

    // MARK: Epitaphs

    @Test func epitaphsMatchLibprotobufC() throws {
        var g = SplitMix64(seed: 0xE917)
        var epitaphs = [Epitaph(status: .ok, reason: ""), Epitaph(status: .invalidFrame, reason: "bad\u{0}tail")]
        for _ in 0..<500 {
            epitaphs.append(Epitaph(status: EpitaphStatus(rawValue: Self.i32(&g)), reason: Self.string(&g)))
        }
        epitaphs.append(Epitaph(status: .timedOut, reason: String(repeating: "r", count: 70_000)))
        for epitaph in epitaphs {
            let message = Self.packEpitaph(epitaph)
            #expect(epitaph.encodedMessage() == message, "\(epitaph)")
            for lane in [PayloadProtocol.defaultEpitaph, 0x7A63, 0xFFFF_FFFF] {
                let expected = Self.framed(
                    Self.packFrame(Frame(kind: .event, payloadProtocol: lane, payload: message, requestID: 0)))
                #expect(try epitaph.v1Frame(lane: lane).encoded() == expected)
                #expect(try epitaph.encodedV1Frame(lane: lane) == expected)
                var buffer: [UInt8] = [0x42]
                try epitaph.encodeV1Frame(into: &buffer, lane: lane)
                #expect(buffer == [0x42] + expected)
            }
        }
        let long = Epitaph(status: .io, reason: String(repeating: "x", count: 200))
        #expect(throws: FramingError.self) { try long.encodedV1Frame(maxBodyByteCount: 100) }
        var untouched: [UInt8] = []
        #expect(throws: FramingError.self) { try long.encodeV1Frame(into: &untouched, maxBodyByteCount: 100) }
        #expect(untouched.isEmpty)
    }

    // MARK: Probe answers

    static func identity(_ g: inout SplitMix64) -> DaemonIdentity {
        DaemonIdentity(
            pid: Bool.random(using: &g) ? 0 : Self.u32(&g),
            executablePath: Bool.random(using: &g)
                ? "/usr/local/bin/exampled" : "/" + String(repeating: "p", count: Int.random(in: 0...200, using: &g)),
            executableHash: Self.bytes(32, &g),
            bootID: Bool.random(using: &g) ? "" : "7f178b59-f577-4878-9241-3a4162f48ad9",
            endpoint: IPCEndpoint(namespaceID: Self.string(&g), path: "/run/user/1000/x-\(g.next()).sock"),
            startedAtUnixMilliseconds: Self.u64(&g),
            idleTimeoutSeconds: Bool.random(using: &g) ? nil : Self.u32(&g))
    }

    @Test func probeAnswersMatchLibprotobufC() throws {
        var g = SplitMix64(seed: 0x9806)
        for round in 0..<300 {
            let responder = ProbeResponder(identity: Self.identity(&g), includeLegacyTail: round % 3 != 0)
            var traceparent = Self.string(&g)
            var tracestate = Self.string(&g)
            if round % 4 == 0 { traceparent = ""; tracestate = "" }
            let request = try ProbeRequest(nonce: Self.bytes(32, &g), traceparent: traceparent, tracestate: tracestate)
            let expected = Self.framed(
                Self.packFrame(
                    Frame(
                        kind: .response, payloadProtocol: .identityProbe,
                        payload: request.nonce + responder.identityPayload,
                        requestID: request.requestID, traceparent: traceparent, tracestate: tracestate)))
            #expect(try responder.answer(request) == expected)

            // From the probe's bytes (the mux's path), with another request id.
            var probe = request.frame
            probe.requestID = round % 5 == 0 ? 0 : Self.u64(&g)
            let probeBytes = [0xAA, 0xBB] + Self.framed(Self.packFrame(probe))
            let expectedForView = Self.framed(
                Self.packFrame(
                    Frame(
                        kind: .response, payloadProtocol: .identityProbe,
                        payload: request.nonce + responder.identityPayload,
                        requestID: probe.requestID, traceparent: traceparent, tracestate: tracestate)))
            try probeBytes.withUnsafeBytes { raw in
                let view = try FrameView(parsingBodyIn: raw, range: 7..<raw.count)
                #expect(try responder.answer(probe: view, in: raw) == expectedForView)
                var output: [UInt8] = [0x01]
                try responder.answer(probe: view, in: raw, into: &output)
                #expect(output == [0x01] + expectedForView)
            }
        }
    }

    @Test func probeAnswerTemplateChecksTheCapAndTheProbe() throws {
        let responder = ProbeResponder(identity: Vectors.captureIdentity)
        let request = try ProbeRequest(nonce: Array(0..<32))
        let answer = try responder.answer(request)
        #expect(throws: FramingError.self) { try responder.answer(request, maxBodyByteCount: answer.count - 6) }
        #expect(try responder.answer(request, maxBodyByteCount: answer.count - 5) == answer)
        // A nonce edited to another length goes through the general encoder.
        var odd = request
        odd.nonce = [1, 2, 3]
        let expected = Self.framed(
            Self.packFrame(
                Frame(
                    kind: .response, payloadProtocol: .identityProbe, payload: [1, 2, 3] + responder.identityPayload,
                    requestID: request.requestID)))
        #expect(try responder.answer(odd) == expected)
        // A frame that is not a valid probe is refused before anything is written.
        let notProbe = Self.framed(Self.packFrame(Frame(payloadProtocol: .identityProbe, payload: [1, 2, 3])))
        try notProbe.withUnsafeBytes { raw in
            let view = try FrameView(parsingBodyIn: raw, range: 5..<raw.count)
            #expect(throws: MuxError.malformedProbe(.nonceLength(3))) { try responder.answer(probe: view, in: raw) }
            var output: [UInt8] = []
            #expect(throws: MuxError.malformedProbe(.nonceLength(3))) {
                try responder.answer(probe: view, in: raw, into: &output)
            }
            #expect(output.isEmpty)
        }
    }

    // MARK: Primitives

    @Test func varintSizesAndBytes() {
        var g = SplitMix64(seed: 3)
        var values: [UInt64] = [0, 1, 127, 128, .max]
        for shift in 0..<64 { values += [1 << UInt64(shift), (1 << UInt64(shift)) - 1, (1 << UInt64(shift)) + 1] }
        for _ in 0..<1000 { values.append(Self.u64(&g)) }
        for value in values {
            var reference: [UInt8] = []
            var v = value
            repeat {
                reference.append(UInt8(v & 0x7F) | (v > 0x7F ? 0x80 : 0))
                v >>= 7
            } while v != 0
            #expect(ProtobufWireWriter.varintByteCount(value) == reference.count, "\(value)")
            var out = [UInt8](repeating: 0, count: 10)
            let n = out.withUnsafeMutableBufferPointer {
                $0.baseAddress.map { ProtobufWireWriter.writeVarint(value, to: $0) } ?? 0
            }
            #expect(Array(out[..<n]) == reference, "\(value)")
        }
    }
}

extension Frame {
    /// A short description for failure messages (payloads can be megabytes).
    var envelopeSummary: String {
        "Frame(v\(envelopeVersion) \(kind) \(payloadProtocol) \(payload.count)B id \(requestID) \(payloadEncoding) deadline \(deadlineUnixMilliseconds) tp \(traceparent.debugDescription) ts \(tracestate.debugDescription))"
    }
}
