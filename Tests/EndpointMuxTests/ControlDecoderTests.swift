import Testing

@_spi(Internals) @testable import EndpointMux

/// A connection as an adapter would drive it: a byte buffer and a count of queued fds,
/// both owned here; the decoder only reads them.
struct ControlTestConnection {
    /// What the decoder handed over, fds included.
    enum Delivery: Hashable {
        case message(ControlMessage, fds: Int)
        case invalid(JSONRPCViolation, id: JSONRPCID?, fds: Int)
        case endOfStream
    }

    var decoder: ControlDecoder
    var buffer: [UInt8] = []
    var queued = 0
    var endOfInput = false
    var delivered: [Delivery] = []
    /// The last step that asked for input.
    var lastStep: ControlDecoderStep?

    init(limits: ControlLimits = .init()) {
        decoder = ControlDecoder(limits: limits)
    }

    /// Appends `bytes` and `fds`, then decodes until the decoder needs input.
    mutating func receive(_ bytes: [UInt8], fds: Int = 0) throws(ControlError) {
        buffer += bytes
        queued += fds
        try drain()
    }

    mutating func receive(_ text: String, fds: Int = 0) throws(ControlError) {
        try receive(Array(text.utf8), fds: fds)
    }

    /// The peer ends the stream.
    mutating func close() throws(ControlError) {
        endOfInput = true
        try drain()
    }

    mutating func drain() throws(ControlError) {
        while true {
            let result = buffer.withUnsafeBytes { raw in
                Result { () throws(ControlError) in
                    try decoder.decode(raw, queuedFileDescriptors: queued, endOfInput: endOfInput)
                }
            }
            let step = try result.get()
            switch step {
            case let .message(message, fds, consumed):
                precondition(fds <= queued && consumed <= buffer.count)
                buffer.removeFirst(consumed)
                queued -= fds
                delivered.append(.message(message, fds: fds))
            case let .invalid(violation, id, fds, consumed):
                precondition(fds <= queued && consumed <= buffer.count)
                buffer.removeFirst(consumed)
                queued -= fds
                delivered.append(.invalid(violation, id: id, fds: fds))
            case .endOfStream:
                delivered.append(.endOfStream)
                lastStep = step
                return
            case .needMoreBytes, .needMoreFileDescriptors:
                lastStep = step
                return
            }
        }
    }
}

/// Decodes `bytes` delivered in pieces ending at `splits`, then closes the stream.
private func decodePieces(
    _ bytes: [UInt8], splits: [Int], limits: ControlLimits = .init()
)
    -> (delivered: [ControlTestConnection.Delivery], error: ControlError?)
{
    var connection = ControlTestConnection(limits: limits)
    var previous = 0
    do throws(ControlError) {
        for split in splits + [bytes.count] {
            try connection.receive(Array(bytes[previous..<split]))
            previous = split
        }
        try connection.close()
        return (connection.delivered, nil)
    } catch {
        return (connection.delivered, error)
    }
}

private func message(_ text: String) -> ControlMessage? {
    guard let value = try? JSONValue(parsing: text) else { return nil }
    return try? ControlMessage(parsing: value)
}

private func request(_ method: String, id: JSONRPCID, params: JSONValue? = nil) -> ControlMessage {
    .request(ControlRequest(method: method, params: params, id: id))
}

@Suite("ControlDecoder")
struct ControlDecoderTests {
    @Test("one message: consumed covers leading whitespace and the object, not what follows")
    func singleMessage() throws {
        var decoder = ControlDecoder()
        let bytes = Array(" \n{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}  ".utf8)
        let step = try bytes.withUnsafeBytes { try decoder.decode($0, queuedFileDescriptors: 0, endOfInput: false) }
        #expect(step == .message(request("ping", id: 1), fileDescriptors: 0, consumed: bytes.count - 2))
        let rest = Array("  ".utf8)
        #expect(
            try rest.withUnsafeBytes { try decoder.decode($0, queuedFileDescriptors: 0, endOfInput: false) }
                == .needMoreBytes)
        #expect(
            try rest.withUnsafeBytes { try decoder.decode($0, queuedFileDescriptors: 0, endOfInput: true) }
                == .endOfStream)
    }

    static let streams: [String] = [
        // `}{`, `} {…}\n`, pretty-printed, multi-byte UTF-8 and escapes.
        #"{"jsonrpc":"2.0","method":"a","id":1}{"jsonrpc":"2.0","method":"b","id":2} {"jsonrpc":"2.0","method":"c","id":3}"#
            + "\n",
        "{\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"héllo ✓ 😀\",\n  \"params\": {\n    \"list\": [1, 2.5, \"\\u00e9\\ud83d\\ude00\"]\n  }\n}\r\n\t{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":\"x\"}",
        #"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":3}{"jsonrpc":"2.0","method":"n","params":[{"é":"𝄞"}]}"#,
    ]

    @Test("every split point and byte-by-byte delivery give the same messages", arguments: streams)
    func everySplitPoint(_ text: String) throws {
        let bytes = Array(text.utf8)
        let (expected, error) = decodePieces(bytes, splits: [])
        #expect(error == nil)
        #expect(expected.count >= 3)
        #expect(expected.last == .endOfStream)
        for split in 0...bytes.count {
            let (delivered, error) = decodePieces(bytes, splits: [split])
            #expect(error == nil)
            #expect(delivered == expected, "split at \(split)")
        }
        let (delivered, byteError) = decodePieces(bytes, splits: Array(1..<bytes.count))
        #expect(byteError == nil)
        #expect(delivered == expected)
    }

    @Test("many messages in one buffer are delivered in order")
    func manyInOneBuffer() throws {
        var connection = ControlTestConnection()
        try connection.receive(Self.streams[0])
        #expect(
            connection.delivered == [
                .message(request("a", id: 1), fds: 0),
                .message(request("b", id: 2), fds: 0),
                .message(request("c", id: 3), fds: 0),
            ])
        #expect(connection.buffer == Array("\n".utf8))
        #expect(connection.lastStep == .needMoreBytes)
    }

    @Test(
        "fds values that mean a count",
        arguments: [
            ("", 0), (",\"fds\":null", 0), (",\"fds\":0", 0), (",\"fds\":-0", 0), (",\"fds\":3", 3),
            (",\"fds\":1,\"fds\":2", 2), (",\"fds\":2,\"fds\":null", 0), (",\"fds\":1024", 1024),
        ])
    func fdsAccepted(_ member: String, _ count: Int) throws {
        var connection = ControlTestConnection()
        try connection.receive("{\"jsonrpc\":\"2.0\",\"method\":\"m\"\(member)}", fds: 1030)
        #expect(connection.delivered == [.message(.notification(ControlNotification(method: "m")), fds: count)])
        #expect(connection.queued == 1030 - count)
    }

    @Test(
        "fds values that are fatal",
        arguments: [
            ("-1", ControlError.invalidFileDescriptorCount(found: "-1")),
            ("1.5", .invalidFileDescriptorCount(found: "1.5")),
            ("1.0", .invalidFileDescriptorCount(found: "1.0")),
            ("1e0", .invalidFileDescriptorCount(found: "1e0")),
            ("-0.0", .invalidFileDescriptorCount(found: "-0.0")),
            ("\"2\"", .invalidFileDescriptorCount(found: "\"2\"")),
            ("true", .invalidFileDescriptorCount(found: "true")),
            ("[1]", .invalidFileDescriptorCount(found: "an array")),
            ("{}", .invalidFileDescriptorCount(found: "an object")),
            ("1025", .tooManyFileDescriptors(count: 1025, limit: 1024)),
            ("4294967297", .tooManyFileDescriptors(count: 4_294_967_297, limit: 1024)),
            ("99999999999999999999999", .tooManyFileDescriptors(count: Int.max, limit: 1024)),
            ("-99999999999999999999999", .invalidFileDescriptorCount(found: "-99999999999999999999999")),
        ])
    func fdsRefused(_ value: String, _ error: ControlError) {
        var connection = ControlTestConnection()
        #expect(throws: error) {
            try connection.receive("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1,\"fds\":\(value)}", fds: 5)
        }
        #expect(error.isFatal)
        #expect(error.jsonRPCCode == -32050)
        // Sticky: the decoder keeps refusing.
        #expect(throws: error) { try connection.drain() }
    }

    @Test("a message waits for its fds and blocks later messages")
    func waitsForFileDescriptors() throws {
        var connection = ControlTestConnection()
        let first = #"{"jsonrpc":"2.0","result":{"count":600},"id":2,"fds":600}"#
        try connection.receive(first, fds: 250)
        #expect(connection.delivered.isEmpty)
        #expect(connection.lastStep == .needMoreFileDescriptors(needed: 600, queued: 250))
        try connection.receive(" ", fds: 250)
        #expect(connection.lastStep == .needMoreFileDescriptors(needed: 600, queued: 500))
        try connection.receive("\n")
        #expect(connection.lastStep == .needMoreFileDescriptors(needed: 600, queued: 500))
        try connection.receive(" ", fds: 100)
        #expect(connection.delivered == [.message(.response(ControlResponse(id: 2, result: ["count": 600])), fds: 600)])
        #expect(connection.queued == 0)
        #expect(connection.buffer == Array(" \n ".utf8))
        try connection.receive(#"{"jsonrpc":"2.0","method":"next"}"#)
        #expect(connection.delivered.last == .message(.notification(ControlNotification(method: "next")), fds: 0))
        #expect(connection.buffer.isEmpty)
    }

    @Test("fds that arrive before the message's bytes are taken FIFO; surplus carries over")
    func surplusCarriesOver() throws {
        var connection = ControlTestConnection()
        try connection.receive(" ", fds: 3)
        try connection.receive(#"{"jsonrpc":"2.0","method":"a","fds":1}"#)
        #expect(connection.delivered == [.message(.notification(ControlNotification(method: "a")), fds: 1)])
        #expect(connection.queued == 2)
        try connection.receive(#"{"jsonrpc":"2.0","method":"b","fds":2}{"jsonrpc":"2.0","method":"c","fds":1}"#)
        #expect(connection.delivered.count == 2)
        #expect(connection.lastStep == .needMoreFileDescriptors(needed: 1, queued: 0))
        try connection.receive("", fds: 1)
        #expect(connection.delivered.last == .message(.notification(ControlNotification(method: "c")), fds: 1))
    }

    @Test("non-whitespace while fds are short is a mismatched count")
    func nonWhitespaceWhileWaiting() throws {
        var connection = ControlTestConnection()
        try connection.receive(#"{"jsonrpc":"2.0","method":"a","id":1,"fds":2}  "#, fds: 1)
        #expect(throws: ControlError.mismatchedCount(expected: 2, queued: 1)) {
            try connection.receive(#" {"jsonrpc":"2.0","method":"b","id":2}"#)
        }
        #expect(connection.delivered.isEmpty)
        #expect(throws: ControlError.mismatchedCount(expected: 2, queued: 1)) { try connection.close() }
        // Next message already in the same buffer as the waiting one.
        var same = ControlTestConnection()
        #expect(throws: ControlError.mismatchedCount(expected: 2, queued: 0)) {
            try same.receive(#"{"jsonrpc":"2.0","method":"a","id":1,"fds":2}{"jsonrpc":"2.0","method":"b","id":2}"#)
        }
    }

    @Test("a stray byte that brings the last missing fd completes the message, then is a framing error")
    func strayByteWithLastFileDescriptor() throws {
        var connection = ControlTestConnection()
        try connection.receive(#"{"jsonrpc":"2.0","method":"a","fds":1}"#)
        #expect(throws: ControlError.framing(JSONSyntaxError(offset: 0, reason: .unexpectedByte(UInt8(ascii: "x"))))) {
            try connection.receive("x", fds: 1)
        }
        #expect(connection.delivered == [.message(.notification(ControlNotification(method: "a")), fds: 1)])
    }

    @Test("end of input: while waiting, inside a message, and after whitespace")
    func endOfInput() throws {
        var waiting = ControlTestConnection()
        try waiting.receive(#"{"jsonrpc":"2.0","method":"a","fds":3} "#, fds: 1)
        #expect(throws: ControlError.mismatchedCount(expected: 3, queued: 1)) { try waiting.close() }

        var truncated = ControlTestConnection()
        try truncated.receive("\n{\"jsonrpc\":\"2.0\",\"met")
        #expect(throws: ControlError.truncatedAtEndOfInput(received: 21)) { try truncated.close() }

        var clean = ControlTestConnection()
        try clean.receive(#"{"jsonrpc":"2.0","method":"a","fds":1}  "#, fds: 2)
        try clean.close()
        #expect(clean.delivered == [.message(.notification(ControlNotification(method: "a")), fds: 1), .endOfStream])
        #expect(clean.queued == 1)

        var satisfiedAtEnd = ControlTestConnection()
        try satisfiedAtEnd.receive(#"{"jsonrpc":"2.0","method":"a","fds":1}"#)
        satisfiedAtEnd.queued = 1
        try satisfiedAtEnd.close()
        #expect(
            satisfiedAtEnd.delivered == [
                .message(.notification(ControlNotification(method: "a")), fds: 1), .endOfStream,
            ])

        var empty = ControlTestConnection()
        try empty.close()
        #expect(empty.delivered == [.endOfStream])
    }

    @Test("syntax errors are framing errors, found before the object closes")
    func framingErrors() throws {
        var connection = ControlTestConnection()
        #expect(throws: ControlError.framing(JSONSyntaxError(offset: 2, reason: .unexpectedByte(UInt8(ascii: "i"))))) {
            try connection.receive("{ invalid json content \n")
        }
        for (text, byte) in [("\u{FEFF}{}", UInt8(0xEF)), ("\u{0C}{}", UInt8(0x0C))] {
            var leading = ControlTestConnection()
            #expect(throws: ControlError.framing(JSONSyntaxError(offset: 0, reason: .unexpectedByte(byte)))) {
                try leading.receive(text)
            }
        }
    }

    @Test(
        "invalid UTF-8 is fatal with its offset",
        arguments: [
            [0x80], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82],
        ] as [[UInt8]])
    func invalidUTF8(_ sequence: [UInt8]) {
        let prefix = Array(#"{"jsonrpc":"2.0","method":""#.utf8)
        let bytes = prefix + sequence + Array(#""}"#.utf8)
        let offset: Int
        switch sequence.count {
        case 1: offset = prefix.count
        case 2: offset = prefix.count + (sequence[0] < 0xC2 ? 0 : 2)  // cut short: the quote is the offending byte
        default: offset = prefix.count + 1
        }
        let (delivered, error) = decodePieces(bytes, splits: Array(1..<bytes.count))
        #expect(delivered.isEmpty)
        #expect(error == .invalidUTF8(offset: offset))
    }

    @Test("depth 128 is accepted, 129 is refused")
    func depthLimit() throws {
        // The top-level object is depth 1.
        func nested(_ depth: Int) -> String {
            "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":" + String(repeating: "[", count: depth - 1)
                + String(repeating: "]", count: depth - 1) + "}"
        }
        var ok = ControlTestConnection()
        try ok.receive(nested(128))
        #expect(ok.delivered.count == 1)
        var tooDeep = ControlTestConnection()
        #expect(throws: ControlError.nestingTooDeep(limit: 128)) { try tooDeep.receive(nested(129)) }
    }

    @Test("the size limit: exactly the limit passes, one byte more fails before the end arrives")
    func sizeLimit() throws {
        let text = #"{"jsonrpc":"2.0","method":"m"}"#
        let size = text.utf8.count
        var exact = ControlTestConnection(limits: ControlLimits(maxMessageBytes: size))
        try exact.receive("  " + text)
        #expect(exact.delivered.count == 1)

        var over = ControlTestConnection(limits: ControlLimits(maxMessageBytes: size - 1))
        try over.receive(String(text.dropLast(2)))
        #expect(over.lastStep == .needMoreBytes)
        #expect(throws: ControlError.messageTooLarge(limit: size - 1)) {
            try over.receive("\"")  // size - 1 bytes and still open
        }
    }

    @Test("whitespace is bounded too, also while a message waits for fds")
    func whitespaceLimit() throws {
        let limits = ControlLimits(maxMessageBytes: 64)
        var leading = ControlTestConnection(limits: limits)
        try leading.receive(String(repeating: " ", count: 64))
        #expect(throws: ControlError.framing(JSONSyntaxError(offset: 64, reason: .whitespaceTooLong(limit: 64)))) {
            try leading.receive(" ")
        }
        let text = #"{"jsonrpc":"2.0","method":"m","fds":1}"#
        var waiting = ControlTestConnection(limits: limits)
        try waiting.receive(text + String(repeating: " ", count: 64))
        #expect(waiting.lastStep == .needMoreFileDescriptors(needed: 1, queued: 0))
        #expect(throws: ControlError.self) { try waiting.receive(" ") }
    }

    @Test(
        "a top-level non-object is refused at its first byte",
        arguments: [
            ("[", JSONValueKind.array), ("[{\"jsonrpc\":\"2.0\",\"method\":\"m\"}]", .array), ("12", .number),
            ("\"x\"", .string), ("t", .bool), ("null", .null),
        ])
    func topLevelNotObject(_ text: String, _ kind: JSONValueKind) {
        var connection = ControlTestConnection()
        #expect(throws: ControlError.topLevelNotObject(kind)) { try connection.receive(" " + text) }
    }

    @Test("objects that are not JSON-RPC keep framing: reported with their fds, then decoding goes on")
    func invalidJSONRPCKeepsFraming() throws {
        var connection = ControlTestConnection()
        try connection.receive(#"{"hello":"world","id":9,"fds":1}"#)
        #expect(connection.lastStep == .needMoreFileDescriptors(needed: 1, queued: 0))
        try connection.receive(#" {"jsonrpc":"1.0","method":"m"}{"jsonrpc":"2.0","method":"ok"}"#, fds: 1)
        #expect(
            connection.delivered == [
                .invalid(.missingVersion, id: 9, fds: 1),
                .invalid(.unsupportedVersion("\"1.0\""), id: nil, fds: 0),
                .message(.notification(ControlNotification(method: "ok")), fds: 0),
            ])
        #expect(ControlError.invalidJSONRPC(.notJSONRPC).jsonRPCCode == -32600)
        #expect(!ControlError.invalidJSONRPC(.notJSONRPC).isFatal)
    }

    @Test("a 64-bit integer id survives decoding exactly")
    func largeIntegerID() throws {
        var connection = ControlTestConnection()
        try connection.receive(#"{"jsonrpc":"2.0","method":"m","id":12345678901234567890}"#)
        guard case let .message(.request(request), _)? = connection.delivered.first else {
            Issue.record("no request")
            return
        }
        #expect(request.id == .number(JSONNumber(UInt64(12_345_678_901_234_567_890))))
        #expect(
            ControlMessage.request(request).encoded().contains(subsequence: Array("\"id\":12345678901234567890}".utf8)))
    }

    @Test("work is linear: a 1 MiB message fed in 4 KiB pieces is examined at most twice")
    func linearWork() throws {
        let message = largeTestMessage(bytes: 1 << 20)
        var connection = ControlTestConnection()
        var offset = 0
        while offset < message.count {
            let next = min(offset + 4096, message.count)
            try connection.receive(Array(message[offset..<next]))
            offset = next
        }
        #expect(connection.delivered.count == 1)
        #expect(connection.decoder.bytesExamined <= 2 * message.count)
        // The same holds for trailing whitespace checked while waiting for fds.
        var waiting = ControlTestConnection()
        try waiting.receive(#"{"jsonrpc":"2.0","method":"m","fds":1}"#)
        for _ in 0..<1000 { try waiting.receive("  ") }
        #expect(waiting.decoder.bytesExamined <= 2 * waiting.buffer.count)
    }

    @Test("random messages, split at random points, decode to what was sent")
    func randomDifferential() throws {
        var random = TestRandom(seed: 0xC0FF_EE00)
        for round in 0..<150 {
            var messages: [(ControlMessage, Int)] = []
            var stream: [UInt8] = []
            for _ in 0..<random.int(in: 1...4) {
                let sent = randomControlMessage(&random)
                let fds = random.chance(0.3) ? random.int(in: 1...5) : 0
                messages.append((sent, fds))
                stream += randomWhitespace(&random)
                if random.chance(0.3) {
                    let value = try JSONValue(
                        parsing: String(decoding: sent.encoded(fileDescriptorCount: fds), as: UTF8.self))
                    stream += prettyPrinted(value, &random)
                } else {
                    stream += sent.encoded(fileDescriptorCount: fds)
                }
            }
            stream += randomWhitespace(&random)
            let totalFDs = messages.reduce(0) { $0 + $1.1 }
            // Random pieces; all fds ride with the first byte.
            var connection = ControlTestConnection()
            var offset = 0
            var fdsSent = false
            while offset < stream.count {
                let next = min(stream.count, offset + random.int(in: 1...64))
                try connection.receive(Array(stream[offset..<next]), fds: fdsSent ? 0 : totalFDs)
                fdsSent = true
                offset = next
            }
            try connection.close()
            let expected = messages.map { ControlTestConnection.Delivery.message($0.0, fds: $0.1) } + [.endOfStream]
            #expect(connection.delivered == expected, "round \(round)")
        }
    }

    @Test("random mutations of valid messages never crash and agree with a whole-buffer parse")
    func randomMutations() {
        var random = TestRandom(seed: 0xBAD_F00D)
        for _ in 0..<2000 {
            var bytes = randomControlMessage(&random).encoded(fileDescriptorCount: random.chance(0.2) ? 1 : 0)
            for _ in 0..<random.int(in: 1...3) {
                let position = random.int(in: 0...(bytes.count - 1))
                switch random.int(in: 0...3) {
                case 0: bytes[position] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes.insert(UInt8.random(in: 0...255, using: &random), at: position)
                case 2: bytes.remove(at: position)
                default:
                    bytes[position] =
                        [UInt8(ascii: "\""), UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "\\"), 0xC3][
                            random.int(in: 0...4)]
                }
                if bytes.isEmpty { bytes = [UInt8(ascii: "{")] }
            }
            let whole = decodePieces(bytes, splits: [])
            let split = random.int(in: 0...bytes.count)
            let pieces = decodePieces(bytes, splits: [split])
            #expect(whole.delivered == pieces.delivered, "\(bytes)")
            #expect(whole.error == pieces.error, "\(bytes)")
            // Whatever the scanner accepts, the parser builds.
            var scanner = JSONScanner()
            let status = bytes.withUnsafeBytes { scanner.scan($0, endOfInput: true) }
            if case let .complete(_, end) = status {
                let value = bytes[..<end].withUnsafeBytes { try? JSONValue(parsing: $0) }
                #expect(value != nil)
            }
        }
    }
}

// MARK: - Random values and messages

/// A random JSON value of bounded depth with strings that need escaping and non-ASCII.
func randomJSONValue(_ random: inout TestRandom, depth: Int = 0) -> JSONValue {
    let pick = random.int(in: 0...(depth >= 4 ? 3 : 5))
    switch pick {
    case 0: return random.chance(0.5) ? .null : .bool(random.chance(0.5))
    case 1:
        let numbers = [
            "0", "-0", "1", "-17", "3.25", "1e10", "-2.5E-3", "12345678901234567890", "9223372036854775807",
            "0.0000001",
        ]
        return .number(JSONNumber(text: numbers[random.int(in: 0...(numbers.count - 1))]) ?? 0)
    case 2, 3: return .string(randomString(&random))
    case 4:
        return .array((0..<random.int(in: 0...4)).map { _ in randomJSONValue(&random, depth: depth + 1) })
    default:
        var object = JSONObject()
        for _ in 0..<random.int(in: 0...4) {
            object.append(key: randomString(&random), value: randomJSONValue(&random, depth: depth + 1))
        }
        return .object(object)
    }
}

func randomString(_ random: inout TestRandom) -> String {
    let pool: [Unicode.Scalar] = [
        "a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "\u{7F}", "é", "✓", "😀", "𝄞", "\u{FEFF}",
        "\u{2028}", "\u{10FFFF}",
    ]
    var scalars = String.UnicodeScalarView()
    for _ in 0..<random.int(in: 0...12) {
        scalars.append(pool[random.int(in: 0...(pool.count - 1))])
    }
    if random.chance(0.05) {
        scalars.append(contentsOf: String(repeating: "long ascii run ", count: random.int(in: 1...40)).unicodeScalars)
    }
    return String(scalars)
}

func randomControlMessage(_ random: inout TestRandom) -> ControlMessage {
    let ids: [JSONRPCID] = [
        1, 0, "abc", "", .null, .number(JSONNumber(UInt64.max)), .number(JSONNumber(text: "-5") ?? 0),
    ]
    let id = ids[random.int(in: 0...(ids.count - 1))]
    let params: JSONValue? = random.chance(0.2) ? nil : randomJSONValue(&random)
    switch random.int(in: 0...3) {
    case 0: return .request(ControlRequest(method: randomString(&random), params: params, id: id))
    case 1: return .notification(ControlNotification(method: randomString(&random), params: params))
    case 2: return .response(ControlResponse(id: id, result: randomJSONValue(&random)))
    default:
        let data: JSONValue? = random.chance(0.5) ? randomJSONValue(&random) : nil
        return .response(
            ControlResponse(
                id: id,
                error: JSONRPCErrorObject(
                    code: random.int(in: -33000...33000), message: randomString(&random), data: data)))
    }
}

func randomWhitespace(_ random: inout TestRandom) -> [UInt8] {
    let space: [UInt8] = [0x20, 0x09, 0x0A, 0x0D]
    return random.chance(0.5) ? [] : (0..<random.int(in: 1...3)).map { _ in space[random.int(in: 0...3)] }
}

/// `value` with random whitespace around every token.
func prettyPrinted(_ value: JSONValue, _ random: inout TestRandom) -> [UInt8] {
    var out: [UInt8] = []
    func write(_ value: JSONValue) {
        switch value {
        case let .array(elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out += randomWhitespace(&random) + [UInt8(ascii: ",")] }
                out += randomWhitespace(&random)
                write(element)
            }
            out += randomWhitespace(&random) + [UInt8(ascii: "]")]
        case let .object(object):
            out.append(UInt8(ascii: "{"))
            for (index, member) in object.members.enumerated() {
                if index > 0 { out += [UInt8(ascii: ",")] + randomWhitespace(&random) }
                out += randomWhitespace(&random) + JSONValue.string(member.key).serialized() + randomWhitespace(&random)
                out += [UInt8(ascii: ":")] + randomWhitespace(&random)
                write(member.value)
            }
            out += randomWhitespace(&random) + [UInt8(ascii: "}")]
        default:
            out += value.serialized()
        }
    }
    write(value)
    return out
}

extension Array where Element == UInt8 {
    fileprivate func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<($0 + subsequence.count)]) == subsequence }
    }
}
