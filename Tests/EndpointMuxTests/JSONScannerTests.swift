import Testing

@_spi(Internals) @testable import EndpointMux

/// Scans `bytes` delivered in pieces that end at `splits` (ascending offsets), returning
/// the status after each piece and the scanner.
private func scanPieces(
    _ bytes: [UInt8],
    splits: [Int],
    limits: JSONLimits = .init(),
    requiresObject: Bool = false,
    endOfInput: Bool = false
) -> (statuses: [JSONScanStatus], scanner: JSONScanner) {
    var scanner = JSONScanner(limits: limits, requiresObject: requiresObject)
    var statuses: [JSONScanStatus] = []
    for (index, split) in (splits + [bytes.count]).enumerated() {
        let isLast = index == splits.count
        let prefix = Array(bytes[0..<split])
        statuses.append(prefix.withUnsafeBytes { scanner.scan($0, endOfInput: isLast && endOfInput) })
    }
    return (statuses, scanner)
}

/// The final status of scanning `bytes` whole.
private func scanWhole(
    _ bytes: [UInt8], limits: JSONLimits = .init(), requiresObject: Bool = false, endOfInput: Bool = false
) -> JSONScanStatus {
    var scanner = JSONScanner(limits: limits, requiresObject: requiresObject)
    return bytes.withUnsafeBytes { scanner.scan($0, endOfInput: endOfInput) }
}

private func scanWhole(_ text: String, limits: JSONLimits = .init(), requiresObject: Bool = false) -> JSONScanStatus {
    scanWhole(Array(text.utf8), limits: limits, requiresObject: requiresObject)
}

private func failure(_ offset: Int, _ reason: JSONSyntaxError.Reason) -> JSONScanStatus {
    .failed(JSONSyntaxError(offset: offset, reason: reason))
}

/// Values that exercise every scanner state, including multi-byte UTF-8 and escapes.
let scannerSampleValues: [[UInt8]] = [
    Array(#"{"jsonrpc":"2.0","method":"echo","params":{"a":[1,-2.5e+3,0,true,false,null]},"id":7}"#.utf8),
    Array("{ \"é\" : \"ünïcødé ✓ 𝄞 😀\" , \"b\" :[ ] ,\"c\":{ }}".utf8),
    Array(#"{"esc":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 end","n":-0.0e-0,"big":12345678901234567890}"#.utf8),
    Array(" \n\t\r{\n  \"pretty\": [\n    1,\n    {\"x\": \"y\"}\n  ]\n}".utf8),
    Array("[[[[]]],[{}],\"\",0.5,1E9]".utf8),
    Array("\"top-level 😀 string\"".utf8),
]

@Suite("JSONScanner")
struct JSONScannerTests {
    @Test("completes at the closing byte and reports the value's bounds")
    func completeValue() {
        #expect(scanWhole("  {\"a\":1}xyz") == .complete(valueStart: 2, end: 9))
        #expect(scanWhole("[]") == .complete(valueStart: 0, end: 2))
        #expect(scanWhole("true,") == .complete(valueStart: 0, end: 4))
        #expect(scanWhole("\"s\"") == .complete(valueStart: 0, end: 3))
        #expect(scanWhole("{\"a\":1") == .needMore)
        #expect(scanWhole("") == .needMore)
        #expect(scanWhole(" \t\r\n") == .needMore)
    }

    @Test("every split point gives the same result, and needMore before the end", arguments: scannerSampleValues)
    func everySplitPoint(_ value: [UInt8]) {
        let whole = scanWhole(value, endOfInput: true)
        guard case let .complete(start, end) = whole else {
            Issue.record("sample does not scan: \(whole)")
            return
        }
        let terminated = value + Array(" ".utf8)
        // Two pieces, split at every offset.
        for split in 0...terminated.count {
            let (statuses, _) = scanPieces(terminated, splits: [split])
            #expect(statuses.last == .complete(valueStart: start, end: end), "split at \(split)")
        }
        // One byte at a time.
        let (statuses, scanner) = scanPieces(terminated, splits: Array(1..<terminated.count))
        let firstComplete = statuses.firstIndex { if case .complete = $0 { true } else { false } }
        #expect(statuses.last == .complete(valueStart: start, end: end))
        if let firstComplete {
            #expect(statuses[..<firstComplete].allSatisfy { $0 == .needMore })
        }
        #expect(scanner.bytesExamined <= terminated.count + 1)
    }

    @Test("split multi-byte UTF-8 sequences resume correctly")
    func splitUTF8() {
        for scalar in ["é", "✓", "😀", "\u{10FFFF}", "\u{800}", "\u{FFFD}"] {
            let value = Array("{\"k\":\"a\(scalar)b\"}".utf8)
            for split in 0...value.count {
                let (statuses, _) = scanPieces(value, splits: [split])
                #expect(statuses.last == .complete(valueStart: 0, end: value.count), "\(scalar) split at \(split)")
            }
        }
    }

    @Test("values back to back: scan, reset, scan the rest")
    func backToBack() {
        let stream = Array("{\"a\":1}{\"b\":2} {\"c\":[3]}\n".utf8)
        var rest = stream[...]
        var found: [String] = []
        var scanner = JSONScanner(requiresObject: true)
        while true {
            let chunk = Array(rest)
            let status = chunk.withUnsafeBytes { scanner.scan($0) }
            guard case let .complete(start, end) = status else {
                #expect(status == .needMore)
                break
            }
            found.append(String(decoding: chunk[start..<end], as: UTF8.self))
            rest = rest.dropFirst(end)
            scanner.reset()
        }
        #expect(found == ["{\"a\":1}", "{\"b\":2}", "{\"c\":[3]}"])
        #expect(Array(rest) == Array("\n".utf8))
    }

    @Test("results are sticky until reset")
    func sticky() {
        var scanner = JSONScanner()
        let first = Array("[1]".utf8)
        #expect(first.withUnsafeBytes { scanner.scan($0) } == .complete(valueStart: 0, end: 3))
        #expect(first.withUnsafeBytes { scanner.scan($0) } == .complete(valueStart: 0, end: 3))
        let bad = Array("]".utf8)
        scanner.reset()
        #expect(bad.withUnsafeBytes { scanner.scan($0) } == failure(0, .unexpectedByte(UInt8(ascii: "]"))))
        #expect(bad.withUnsafeBytes { scanner.scan($0) } == failure(0, .unexpectedByte(UInt8(ascii: "]"))))
        scanner.reset()
        #expect(first.withUnsafeBytes { scanner.scan($0) } == .complete(valueStart: 0, end: 3))
        // A failure in the middle of a surrogate pair leaves nothing behind.
        let lone = Array(#""\ud800\u0041""#.utf8)
        scanner.reset()
        #expect(lone.withUnsafeBytes { scanner.scan($0) } == failure(12, .loneSurrogate(0xD800)))
        let escaped = Array(#""\u0041""#.utf8)
        scanner.reset()
        #expect(escaped.withUnsafeBytes { scanner.scan($0) } == .complete(valueStart: 0, end: 8))
        #expect(scanner.topLevelKind == .string)
    }

    @Test(
        "syntax errors carry the offending byte's offset",
        arguments: [
            ("{\"a\":tru}", 8, JSONSyntaxError.Reason.invalidLiteral(UInt8(ascii: "}"))),
            ("{\"a\":nul1}", 8, .invalidLiteral(UInt8(ascii: "1"))),
            ("{\"a\":01}", 6, .invalidNumber(UInt8(ascii: "1"))),
            ("{\"a\":1.}", 7, .invalidNumber(UInt8(ascii: "}"))),
            ("{\"a\":-}", 6, .invalidNumber(UInt8(ascii: "}"))),
            ("{\"a\":1e}", 7, .invalidNumber(UInt8(ascii: "}"))),
            ("{\"a\":1e+}", 8, .invalidNumber(UInt8(ascii: "}"))),
            ("{\"a\":1.5.}", 8, .invalidNumber(UInt8(ascii: "."))),
            ("{\"a\":1e5e}", 8, .invalidNumber(UInt8(ascii: "e"))),
            ("{\"a\":+1}", 5, .unexpectedByte(UInt8(ascii: "+"))),
            ("{\"a\":.5}", 5, .unexpectedByte(UInt8(ascii: "."))),
            ("{\"a\":\"\\x\"}", 7, .invalidEscape(UInt8(ascii: "x"))),
            ("{\"a\":\"\\u12G4\"}", 10, .invalidUnicodeEscape(UInt8(ascii: "G"))),
            ("{\"a\":\"\\ud800\"}", 12, .loneSurrogate(0xD800)),
            ("{\"a\":\"\\udc00\"}", 11, .loneSurrogate(0xDC00)),
            ("{\"a\":\"\\ud800\\u0041\"}", 17, .loneSurrogate(0xD800)),
            ("{\"a\":\"\\ud800\\n\"}", 13, .loneSurrogate(0xD800)),
            ("{\"a\":\"\\uD83D\\uD83D\"}", 17, .loneSurrogate(0xD83D)),
            ("{\"a\":\"x\ny\"}", 7, .controlCharacterInString(0x0A)),
            ("{\"a\":\"\u{1F}\"}", 6, .controlCharacterInString(0x1F)),
            ("{,}", 1, .unexpectedByte(UInt8(ascii: ","))),
            ("{\"a\" 1}", 5, .unexpectedByte(UInt8(ascii: "1"))),
            ("{\"a\":1,}", 7, .unexpectedByte(UInt8(ascii: "}"))),
            ("{1:2}", 1, .unexpectedByte(UInt8(ascii: "1"))),
            ("[1,]", 3, .unexpectedByte(UInt8(ascii: "]"))),
            ("[1 2]", 3, .unexpectedByte(UInt8(ascii: "2"))),
            ("[}", 1, .unexpectedByte(UInt8(ascii: "}"))),
            ("{\"a\":1]", 6, .unexpectedByte(UInt8(ascii: "]"))),
            ("[1}", 2, .unexpectedByte(UInt8(ascii: "}"))),
            ("]", 0, .unexpectedByte(UInt8(ascii: "]"))),
            ("\u{0C}{}", 0, .unexpectedByte(0x0C)),
            ("\u{FEFF}{}", 0, .unexpectedByte(0xEF)),
            ("{\"a\":\u{A0}1}", 5, .unexpectedByte(0xC2)),
        ])
    func syntaxErrors(_ text: String, _ offset: Int, _ reason: JSONSyntaxError.Reason) {
        let bytes = Array(text.utf8)
        #expect(scanWhole(bytes) == failure(offset, reason))
        // The same error when the bytes come one at a time, and no sooner than the byte.
        let (statuses, _) = scanPieces(bytes, splits: Array(1..<bytes.count))
        #expect(statuses.last == failure(offset, reason))
        let firstFailure = statuses.firstIndex { if case .failed = $0 { true } else { false } }
        #expect(firstFailure == offset)
    }

    @Test(
        "invalid UTF-8 is refused at the offending byte",
        arguments: [
            ([0x80], 0),  // lone continuation byte
            ([0xC0, 0x80], 0),  // overlong NUL
            ([0xC1, 0xBF], 0),  // overlong
            ([0xE0, 0x80, 0x80], 1),  // overlong 3-byte
            ([0xED, 0xA0, 0x80], 1),  // UTF-8-encoded surrogate U+D800
            ([0xED, 0xBF, 0xBF], 1),  // U+DFFF
            ([0xF0, 0x80, 0x80, 0x80], 1),  // overlong 4-byte
            ([0xF4, 0x90, 0x80, 0x80], 1),  // U+110000
            ([0xF5, 0x80, 0x80, 0x80], 0),
            ([0xFF], 0),
            ([0xE2, 0x82], 2),  // cut short before the closing quote
            ([0xF0, 0x9F, 0x98], 3),
            ([0xC3, 0x41], 1),  // lead followed by ASCII
            ([0xE2, 0x82, 0xC3, 0xA9], 2),
        ] as [([UInt8], Int)])
    func invalidUTF8(_ sequence: [UInt8], _ offsetInSequence: Int) {
        let prefix = Array("{\"k\":\"ab".utf8)
        let bytes = prefix + sequence + Array("\"}".utf8)
        let offset = prefix.count + offsetInSequence
        let expected = failure(offset, .invalidUTF8(bytes[offset]))
        #expect(scanWhole(bytes) == expected)
        let (statuses, _) = scanPieces(bytes, splits: Array(1..<bytes.count))
        #expect(statuses.last == expected)
        // At every alignment of the eight-byte fast path.
        for pad in 0..<16 {
            let padded =
                Array("{\"k\":\"".utf8) + Array(repeating: UInt8(ascii: "x"), count: pad) + sequence + Array("\"}".utf8)
            let at = 6 + pad + offsetInSequence
            #expect(scanWhole(padded) == failure(at, .invalidUTF8(padded[at])), "pad \(pad)")
        }
    }

    @Test("valid UTF-8 boundaries are accepted")
    func validUTF8Boundaries() {
        let sequences: [[UInt8]] = [
            [0x7F], [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80],
            [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],
        ]
        for sequence in sequences {
            let bytes = Array("[\"".utf8) + sequence + Array("\"]".utf8)
            #expect(scanWhole(bytes) == .complete(valueStart: 0, end: bytes.count), "\(sequence)")
            let (statuses, _) = scanPieces(bytes, splits: Array(1..<bytes.count))
            #expect(statuses.last == .complete(valueStart: 0, end: bytes.count))
        }
    }

    @Test("the fast path stops at quotes, backslashes and control bytes in every lane")
    func fastPathLanes() {
        for lane in 0..<24 {
            let filler = Array(repeating: UInt8(ascii: "a"), count: lane)
            let tail = Array(repeating: UInt8(ascii: "b"), count: 9)
            let quoted = Array("[\"".utf8) + filler + Array("\"".utf8)
            #expect(scanWhole(quoted + Array("]".utf8)) == .complete(valueStart: 0, end: quoted.count + 1))
            let escaped = Array("[\"".utf8) + filler + Array(#"\""#.utf8) + tail + Array("\"]".utf8)
            #expect(scanWhole(escaped) == .complete(valueStart: 0, end: escaped.count))
            let control = Array("[\"".utf8) + filler + [0x1F] + tail + Array("\"]".utf8)
            #expect(scanWhole(control) == failure(2 + lane, .controlCharacterInString(0x1F)))
            let del = Array("[\"".utf8) + filler + [0x7F, 0x20] + tail + Array("\"]".utf8)
            #expect(scanWhole(del) == .complete(valueStart: 0, end: del.count))
        }
    }

    @Test("random byte strings: the scanner agrees with the standard library's UTF-8 validation")
    func randomStringsAgainstStdlib() {
        var random = TestRandom(seed: 0x5EED_0001)
        let alphabet: [UInt8] = [
            0x41, 0x7A, 0x20, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF4, 0xF5,
            0xFF,
        ]
        for _ in 0..<3000 {
            let length = random.int(in: 0...24)
            let content = (0..<length).map { _ in alphabet[random.int(in: 0...(alphabet.count - 1))] }
            let bytes = Array("\"".utf8) + content + Array("\"".utf8)
            let valid = String(validating: content, as: UTF8.self) != nil
            let status = scanWhole(bytes)
            if valid {
                #expect(status == .complete(valueStart: 0, end: bytes.count), "\(content)")
            } else if case let .failed(error) = status, case .invalidUTF8 = error.reason {
            } else {
                Issue.record("expected invalid UTF-8 for \(content), got \(status)")
            }
            // Split at a random point: same answer.
            let split = random.int(in: 0...bytes.count)
            let (statuses, _) = scanPieces(bytes, splits: [split])
            #expect(statuses.last == status)
        }
    }

    @Test("128 nested containers are accepted, 129 are refused at the 129th")
    func depthLimit() {
        let ok = Array(repeating: UInt8(ascii: "["), count: 128) + Array(repeating: UInt8(ascii: "]"), count: 128)
        #expect(scanWhole(ok) == .complete(valueStart: 0, end: 256))
        let tooDeep = Array(repeating: UInt8(ascii: "["), count: 129) + Array(repeating: UInt8(ascii: "]"), count: 129)
        #expect(scanWhole(tooDeep) == failure(128, .nestingTooDeep(limit: 128)))
        // Detected before the rest arrives.
        #expect(scanWhole(Array(tooDeep[0..<129])) == failure(128, .nestingTooDeep(limit: 128)))
        // Objects and arrays mixed; a configured limit.
        let mixed = Array("{\"a\":[{\"b\":[1]}]}".utf8)
        #expect(scanWhole(mixed, limits: JSONLimits(maxDepth: 4)) == .complete(valueStart: 0, end: mixed.count))
        #expect(scanWhole(mixed, limits: JSONLimits(maxDepth: 3)) == failure(11, .nestingTooDeep(limit: 3)))
        // Deeper than 64 exercises more than one word of the container stack.
        var deep = ""
        for i in 0..<100 { deep += i % 2 == 0 ? "{\"k\":" : "[" }
        deep += "0"
        for i in (0..<100).reversed() { deep += i % 2 == 0 ? "}" : "]" }
        #expect(scanWhole(deep) == .complete(valueStart: 0, end: deep.utf8.count))
    }

    @Test("the size limit counts from the value's first byte and fails as soon as it is certain")
    func sizeLimit() {
        let value = Array("{\"a\":\"xyz\"}".utf8)  // 11 bytes
        let padded = Array("  \n".utf8) + value
        #expect(scanWhole(padded, limits: JSONLimits(maxMessageBytes: 11)) == .complete(valueStart: 3, end: 14))
        #expect(scanWhole(padded, limits: JSONLimits(maxMessageBytes: 10)) == failure(13, .messageTooLarge(limit: 10)))
        // The 10 bytes that do not end the value are enough to know.
        #expect(
            scanWhole(Array(padded[0..<13]), limits: JSONLimits(maxMessageBytes: 10))
                == failure(13, .messageTooLarge(limit: 10)))
        #expect(scanWhole(Array(padded[0..<12]), limits: JSONLimits(maxMessageBytes: 10)) == .needMore)
        // Whitespace before a value is held to the same bound.
        let spaces = Array(repeating: UInt8(ascii: " "), count: 10)
        #expect(
            scanWhole(spaces + Array("{}".utf8), limits: JSONLimits(maxMessageBytes: 10))
                == .complete(valueStart: 10, end: 12))
        #expect(
            scanWhole(spaces + Array(" {}".utf8), limits: JSONLimits(maxMessageBytes: 10))
                == failure(10, .whitespaceTooLong(limit: 10)))
    }

    @Test("a top-level number at the size limit ends at the next byte")
    func numberAtSizeLimit() {
        let limits = JSONLimits(maxMessageBytes: 3)
        #expect(scanWhole(Array("123 ".utf8), limits: limits) == .complete(valueStart: 0, end: 3))
        #expect(scanWhole(Array("123".utf8), limits: limits) == .needMore)
        #expect(scanWhole(Array("123".utf8), limits: limits, endOfInput: true) == .complete(valueStart: 0, end: 3))
        #expect(scanWhole(Array("1234".utf8), limits: limits) == failure(3, .messageTooLarge(limit: 3)))
    }

    @Test(
        "requiresObject refuses other kinds at their first byte",
        arguments: [
            ("[1]", JSONValueKind.array), ("\"s\"", .string), ("12", .number), ("-", .number),
            ("true", .bool), ("f", .bool), ("null", .null),
        ])
    func requiresObject(_ text: String, _ kind: JSONValueKind) {
        let bytes = Array(" \(text)".utf8)
        #expect(scanWhole(bytes, requiresObject: true) == failure(1, .topLevelNotObject(kind)))
        #expect(scanWhole(Array(bytes[0..<2]), requiresObject: true) == failure(1, .topLevelNotObject(kind)))
        var scanner = JSONScanner()
        _ = bytes.withUnsafeBytes { scanner.scan($0) }
        #expect(scanner.topLevelKind == kind)
    }

    @Test("top-level numbers wait for a terminating byte or the end of input")
    func topLevelNumbers() {
        #expect(scanWhole("12") == .needMore)
        #expect(scanWhole("12 ") == .complete(valueStart: 0, end: 2))
        #expect(scanWhole("-0.5e+7,") == .complete(valueStart: 0, end: 7))
        #expect(scanWhole(Array("12".utf8), endOfInput: true) == .complete(valueStart: 0, end: 2))
        #expect(scanWhole(Array("1.".utf8), endOfInput: true) == failure(2, .unexpectedEndOfInput))
        #expect(scanWhole(Array("{\"a\":1".utf8), endOfInput: true) == failure(6, .unexpectedEndOfInput))
        #expect(scanWhole(Array("  ".utf8), endOfInput: true) == .needMore)
        #expect(scanWhole([], endOfInput: true) == .needMore)
    }

    @Test("work is linear: a 1 MiB value fed in 4 KiB pieces is examined about once")
    func linearWork() {
        let message = largeTestMessage(bytes: 1 << 20)
        var scanner = JSONScanner(requiresObject: true)
        var buffer: [UInt8] = []
        var offset = 0
        var status = JSONScanStatus.needMore
        var calls = 0
        while offset < message.count {
            let next = min(offset + 4096, message.count)
            buffer.append(contentsOf: message[offset..<next])
            offset = next
            status = buffer.withUnsafeBytes { scanner.scan($0) }
            calls += 1
        }
        #expect(status == .complete(valueStart: 0, end: message.count))
        #expect(calls >= 256)
        #expect(scanner.bytesExamined <= 2 * message.count)
        #expect(scanner.bytesExamined >= message.count)
    }
}

/// A JSON-RPC request of about `bytes` bytes whose params hold long strings.
func largeTestMessage(bytes: Int) -> [UInt8] {
    let piece = String(repeating: "lorem ipsum dolor sit amet é ✓ ", count: 200)
    var text = #"{"jsonrpc":"2.0","method":"store","params":["#
    var first = true
    while text.utf8.count + piece.utf8.count + 40 < bytes {
        text += (first ? "" : ",") + "\"" + piece + "\""
        first = false
    }
    text += #"],"id":1}"#
    return Array(text.utf8)
}

/// The test generator, with conveniences for the JSON tests.
typealias TestRandom = SplitMix64

extension SplitMix64 {
    mutating func int(in range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &self)
    }

    mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < probability
    }
}
