import Testing
@_spi(Internals) @testable import EndpointMux

/// `FrameView` (zero-copy) must agree with libprotobuf-c (`Frame(parsingBody:)`) on every
/// input: both reject, or both accept with the same field values.
@Suite struct FrameViewDifferentialTests {
    enum Outcome: Equatable { case rejected, accepted(Frame) }

    static func viaLibprotobufC(_ body: [UInt8]) -> Outcome {
        (try? Frame(parsingBody: body)).map(Outcome.accepted) ?? .rejected
    }

    static func viaFrameView(_ body: [UInt8]) -> Outcome {
        // Embed the body at an offset so ranges are exercised relative to the buffer.
        let buffer: [UInt8] = [0xEE, 0xEE, 0xEE] + body + [0xEE]
        return buffer.withUnsafeBytes { raw in
            guard let view = try? FrameView(parsingBodyIn: raw, range: 3..<(3 + body.count)) else { return .rejected }
            return .accepted(view.frame(in: raw))
        }
    }

    static func check(_ body: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        let expected = viaLibprotobufC(body)
        let actual = viaFrameView(body)
        #expect(actual == expected, "body \(hexString(body))", sourceLocation: sourceLocation)
    }

    @Test func capturedVectorsAgree() throws {
        var bodies: [[UInt8]] = []
        for name in ["probe-request.hex", "probe-response.hex", "request-ping.hex", "response-ping.hex"] {
            bodies.append(Array(try Vectors.hexFile(name).dropFirst(5)))
        }
        for row in try Vectors.tsv("frames-misc.tsv") {
            for column in ["request_hex", "response_hex"] {
                var bytes = try hex(row[column] ?? "")
                while bytes.count >= 5 {
                    let length = Int(bytes[1]) | Int(bytes[2]) << 8 | Int(bytes[3]) << 16 | Int(bytes[4]) << 24
                    bodies.append(Array(bytes[5..<(5 + length)]))
                    bytes.removeFirst(5 + length)
                }
            }
        }
        #expect(bodies.count > 40)
        for body in bodies {
            #expect(Self.viaLibprotobufC(body) != .rejected)
            Self.check(body)
        }
    }

    @Test func handPickedEdgeCasesAgree() {
        let cases: [[UInt8]] = [
            [], [0x00], [0x08], [0x08, 0x80], [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],  // 11-byte varint
            [0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],  // uint32 from a 5-byte varint with high bits
            [0x28, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],  // uint64 overflow bits
            [0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],  // kind -1
            [0x22, 0x80, 0x80, 0x80, 0x80, 0x00],  // 5-byte length prefix 0
            [0x22, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],  // 6-byte length prefix
            [0x42, 0x03, 0x61, 0x00, 0x62],  // string with embedded NUL
            [0x42, 0x02, 0xC3, 0xA9],  // valid 2-byte UTF-8
            [0x42, 0x03, 0xED, 0xA0, 0x80],  // UTF-8 surrogate
            [0x42, 0x02, 0xC0, 0x80],  // overlong
            [0x78, 0x01], [0x9A, 0x06, 0x02, 0x7A, 0x7A],  // unknown fields 15 and 99
            [0x0B, 0x0C], [0x0C], [0x0E], [0x0F],  // wire types 3, 4, 6, 7
            [0x09, 1, 2, 3, 4, 5, 6, 7, 8], [0x09, 1, 2],  // field 1 as fixed64
            [0x0D, 1, 2, 3, 4], [0x7D, 1, 2, 3, 4],  // fixed32 known and unknown
            [0x80, 0x80, 0x80, 0x80, 0x10, 0x00],  // 5-byte tag
            [0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00],  // 6-byte tag
            [0x08, 0x01, 0x08, 0x02],  // duplicate field: last wins
            [0x22, 0x01, 0x41, 0x22, 0x01, 0x42],  // duplicate bytes: last wins
        ]
        for body in cases { Self.check(body) }
    }

    /// Varint fields of every length from 1 to 11 bytes (terminated or not), followed by
    /// other fields or junk, and cut at every length: covers the one-byte, eight-bytes-at-
    /// once (9th and 10th byte) and byte-by-byte varint paths and their ends.
    @Test func varintsOfEveryLengthAndCutAgree() {
        var rng = SplitMix64(seed: 0x7A91_0C0D)
        let trailers: [[UInt8]] = [[], [0x08, 0x01], [0x22, 0x03, 1, 2, 3], [0x28, 0x96, 0x01], [0x00], [0x80]]
        for tag: UInt8 in [0x08, 0x10, 0x18, 0x28, 0x30, 0x38] {
            for length in 1...11 {
                for round in 0..<25 {
                    var varint = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) | 0x80 }
                    if round % 5 != 0 { varint[length - 1] &= 0x7F }  // mostly terminated
                    var trailer = trailers[round % trailers.count]
                    if round % 7 == 3 {
                        trailer = (0..<Int.random(in: 0...12, using: &rng)).map { _ in
                            UInt8.random(in: 0...255, using: &rng)
                        }
                    }
                    let body = [tag] + varint + trailer
                    for cut in stride(from: body.count, through: 1, by: -1) { Self.check(Array(body[..<cut])) }
                }
            }
        }
    }

    @Test func randomFramesAndMutationsAgree() throws {
        var rng = SplitMix64(seed: 0xE17D_0147)
        var accepted = 0
        var rejected = 0
        for iteration in 0..<20_000 {
            let base = randomFrame(&rng).encodedBody()
            var body = base
            switch iteration % 4 {
            case 0: break
            case 1:  // flip random bytes
                for _ in 0...Int.random(in: 0...3, using: &rng) where !body.isEmpty {
                    body[Int.random(in: 0..<body.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 2:  // truncate or extend
                if Bool.random(using: &rng), !body.isEmpty {
                    body = Array(body[..<Int.random(in: 0..<body.count, using: &rng)])
                } else {
                    body += (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
            default:  // pure noise
                body = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            let expected = Self.viaLibprotobufC(body)
            if expected == .rejected { rejected += 1 } else { accepted += 1 }
            let actual = Self.viaFrameView(body)
            if actual != expected {
                Issue.record("disagreement on \(hexString(body)): libprotobuf-c \(expected), FrameView \(actual)")
                return
            }
        }
        // Both outcomes must be well represented, or the test proves little.
        #expect(accepted > 5_000 && rejected > 2_000, "accepted \(accepted), rejected \(rejected)")
    }

    func randomFrame(_ rng: inout SplitMix64) -> Frame {
        func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &rng)] }
        let trace = pick(["", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "é", "k=v"])
        return Frame(
            envelopeVersion: pick([0, 1, 2, UInt32.max]),
            kind: FrameKind(rawValue: pick([0, 1, 2, 3, 7, -1])),
            payloadProtocol: PayloadProtocol(rawValue: pick([0, 0x7A63, 0xB232, 0xFFFF, 0x1_0000, UInt32.max])),
            payload: (0..<pick([0, 1, 5, 127, 128, 300])).map { _ in UInt8.random(in: 0...255, using: &rng) },
            requestID: pick([0, 1, 127, 128, UInt64.max, UInt64.random(in: 0...UInt64.max, using: &rng)]),
            payloadEncoding: PayloadEncoding(rawValue: pick([0, 1, 3])),
            deadlineUnixMilliseconds: pick([0, 1, 4_102_444_800_000]),
            traceparent: trace, tracestate: pick(["", "rojo=1"]))
    }
}
