import Testing
@_spi(Internals) @testable import EndpointMux

@Suite struct LegacyDetectorTests {
    func classify(_ detector: LegacyDetector, _ bytes: [UInt8]) -> LegacyClassification {
        bytes.withUnsafeBytes { detector($0) }
    }

    @Test func magicPrefix() {
        let d = LegacyDetector.magicPrefix(Array("KV1".utf8))
        #expect(classify(d, Array("K".utf8)) == .needMoreBytes)
        #expect(classify(d, Array("KV".utf8)) == .needMoreBytes)
        #expect(classify(d, Array("KV1 hello".utf8)) == .legacy)
        #expect(classify(d, Array("KX".utf8)) == .notLegacy)
        #expect(classify(d, [0x01]) == .notLegacy)
    }

    @Test func lengthPrefixedBigEndian() {
        let d = LegacyDetector.lengthPrefixed(width: .u32, order: .bigEndian, plausible: 1...65_536)
        #expect(classify(d, [0x00]) == .needMoreBytes)
        #expect(classify(d, [0x01]) == .notLegacy)  // at least 16 MiB: implausible already
        #expect(classify(d, [0x00, 0x00, 0x01]) == .needMoreBytes)
        #expect(classify(d, [0x00, 0x00, 0x01, 0x00]) == .legacy)
        #expect(classify(d, [0x00, 0x00, 0x00, 0x00]) == .notLegacy)
    }

    @Test func lengthPrefixedLittleEndianU16() {
        let d = LegacyDetector.lengthPrefixed(width: .u16, order: .littleEndian, plausible: 2...512)
        #expect(classify(d, [0x10]) == .needMoreBytes)
        #expect(classify(d, [0x10, 0x00]) == .legacy)
        #expect(classify(d, [0x10, 0x40]) == .notLegacy)
        #expect(classify(d, [0x01, 0x00]) == .notLegacy)
    }

    @Test func lengthPrefixedWinsTiesOnFramingByte() throws {
        // A v1 header 01 0e 00 00 read as a u32 LE length is 0x00000e01 = 3585.
        let d = LegacyDetector.lengthPrefixed(width: .u32, order: .littleEndian, plausible: 1...4096)
        let frame = try Frame(payloadProtocol: 0x7A63, payload: Array("ping".utf8), requestID: 1).encoded()
        #expect(classify(d, frame) == .legacy)
        let mux = EndpointMux(identity: Vectors.captureIdentity, servedProtocols: [0x7A63], legacyDetector: d)
        #expect(try mux.poll(frame) == .legacy)
    }

    @Test func lineBased() {
        let d = LegacyDetector.lineBased()
        #expect(classify(d, Array("SET a b\n".utf8)) == .legacy)
        #expect(classify(d, Array("\n".utf8)) == .legacy)
        #expect(classify(d, Array("{\"jsonrpc\"".utf8)) == .notLegacy)
        #expect(classify(d, [0xFF]) == .legacy)
        // 0x01: a frame header unless a newline or an impossible length says it is a line.
        #expect(classify(d, [0x01, 0x00]) == .needMoreBytes)
        #expect(classify(d, [0x01, 0x0A]) == .legacy)
        #expect(classify(d, Array("\u{01}\u{02}binary\n".utf8)) == .legacy)
        #expect(classify(d, [0x01, 0x10, 0x00, 0x00, 0x00]) == .notLegacy)
    }

    @Test func httpRequestLine() {
        let d = LegacyDetector.httpRequestLine
        #expect(classify(d, Array("G".utf8)) == .needMoreBytes)
        #expect(classify(d, Array("GET".utf8)) == .needMoreBytes)
        #expect(classify(d, Array("GET / HTTP/1.1\r\n".utf8)) == .legacy)
        #expect(classify(d, Array("P".utf8)) == .needMoreBytes)
        #expect(classify(d, Array("PATCH /".utf8)) == .legacy)
        #expect(classify(d, Array("GETX".utf8)) == .notLegacy)
        #expect(classify(d, [0x01]) == .notLegacy)
    }

    @Test func neverAndClosure() throws {
        #expect(classify(.never, [0x01]) == .notLegacy)
        let closure = LegacyDetector { $0.count >= 2 ? .legacy : .needMoreBytes }
        #expect(classify(closure, [0x01]) == .needMoreBytes)
        #expect(classify(closure, [0x01, 0x02]) == .legacy)
    }
}
