import Testing

@_spi(Internals) @testable import EndpointMux

private func parse(_ text: String) throws -> ControlMessage {
    try ControlMessage(parsing: try JSONValue(parsing: text))
}

private func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

@Suite("ControlMessage")
struct ControlMessageTests {
    @Test("classification follows spec §8")
    func classification() throws {
        #expect(try parse(#"{"jsonrpc":"2.0","method":"m","id":1}"#) == .request(ControlRequest(method: "m", id: 1)))
        #expect(
            try parse(#"{"jsonrpc":"2.0","method":"m","id":null}"#) == .request(ControlRequest(method: "m", id: .null)))
        #expect(
            try parse(#"{"jsonrpc":"2.0","method":"m","id":"s","params":[1]}"#)
                == .request(ControlRequest(method: "m", params: [1], id: "s")))
        #expect(
            try parse(#"{"jsonrpc":"2.0","method":"m","params":{"a":null}}"#)
                == .notification(ControlNotification(method: "m", params: ["a": .null])))
        #expect(try parse(#"{"jsonrpc":"2.0","result":[],"id":1}"#) == .response(ControlResponse(id: 1, result: [])))
        #expect(
            try parse(
                #"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":{"m":"x"}},"id":3}"#)
                == .response(ControlResponse(id: 3, error: .methodNotFound(data: ["m": "x"]))))
        // method + id wins over result; result wins over a lone method.
        #expect(
            try parse(#"{"jsonrpc":"2.0","method":"m","result":1,"id":1}"#)
                == .request(ControlRequest(method: "m", id: 1)))
        #expect(throws: ControlError.invalidJSONRPC(.responseWithoutID)) {
            try parse(#"{"jsonrpc":"2.0","method":"m","result":1}"#)
        }
    }

    @Test(
        "objects that are not JSON-RPC",
        arguments: [
            (#"{"id":1,"method":"m"}"#, JSONRPCViolation.missingVersion),
            (#"{"jsonrpc":"1.0","method":"m"}"#, .unsupportedVersion("\"1.0\"")),
            (#"{"jsonrpc":2.0,"method":"m"}"#, .unsupportedVersion("2.0")),
            (#"{"jsonrpc":"2.0"}"#, .notJSONRPC),
            (#"{"jsonrpc":"2.0","id":1}"#, .notJSONRPC),
            (#"{"jsonrpc":"2.0","params":[],"fds":0}"#, .notJSONRPC),
            (#"{"jsonrpc":"2.0","method":5}"#, .methodNotString),
            (#"{"jsonrpc":"2.0","method":"m","id":true}"#, .invalidID),
            (#"{"jsonrpc":"2.0","result":1,"id":[1]}"#, .invalidID),
            (#"{"jsonrpc":"2.0","result":1}"#, .responseWithoutID),
            (#"{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"m"},"id":1}"#, .resultAndError),
            (#"{"jsonrpc":"2.0","error":{"code":1.5,"message":"m"},"id":1}"#, .malformedErrorObject),
            (#"{"jsonrpc":"2.0","error":{"code":1},"id":1}"#, .malformedErrorObject),
            (#"{"jsonrpc":"2.0","error":"bad","id":1}"#, .malformedErrorObject),
        ])
    func invalid(_ text: String, _ violation: JSONRPCViolation) {
        #expect(throws: ControlError.invalidJSONRPC(violation)) { try parse(text) }
        #expect(!violation.description.isEmpty)
    }

    @Test("a non-object is not a message")
    func nonObject() {
        #expect(throws: ControlError.topLevelNotObject(.array)) { try ControlMessage(parsing: [1]) }
        #expect(throws: ControlError.topLevelNotObject(.string)) { try ControlMessage(parsing: "x") }
    }

    @Test("\"result\": null is kept and written back")
    func nullResult() throws {
        let message = try parse(#"{"jsonrpc":"2.0","result":null,"id":1}"#)
        #expect(message == .response(ControlResponse(id: 1, result: .null)))
        #expect(text(message.encoded()) == #"{"jsonrpc":"2.0","result":null,"id":1}"#)
    }

    @Test("a 64-bit id round-trips exactly")
    func largeID() throws {
        let source = #"{"jsonrpc":"2.0","method":"m","id":12345678901234567890}"#
        let message = try parse(source)
        #expect(message.id == .number(JSONNumber(UInt64(12_345_678_901_234_567_890))))
        if case let .number(number)? = message.id {
            #expect(number.uint64 == 12_345_678_901_234_567_890)
            #expect(number.int64 == nil)
        } else {
            Issue.record("id is not a number")
        }
        #expect(text(message.encoded()) == source)
    }

    @Test(
        "encoded bytes match the references' member order",
        arguments: [
            (
                ControlMessage.response(ControlResponse(id: 2, result: ["count": 600])), 600,
                #"{"jsonrpc":"2.0","result":{"count":600},"id":2,"fds":600}"#
            ),
            (
                .response(ControlResponse(id: 3, error: .methodNotFound())), 0,
                #"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":3}"#
            ),
            (
                .response(ControlResponse(id: .null, error: .fileDescriptorError(data: "bad fds"))), 0,
                #"{"jsonrpc":"2.0","error":{"code":-32050,"message":"File Descriptor Error","data":"bad fds"},"id":null}"#
            ),
            (
                .request(ControlRequest(method: "readFile", params: ["path": "/etc/hosts", "n": [1, 2.5]], id: "r1")),
                1,
                #"{"jsonrpc":"2.0","method":"readFile","params":{"path":"/etc/hosts","n":[1,2.5]},"id":"r1","fds":1}"#
            ),
            (.request(ControlRequest(method: "ping", id: 0)), 0, #"{"jsonrpc":"2.0","method":"ping","id":0}"#),
            (
                .notification(ControlNotification(method: "tick", params: .null)), 0,
                #"{"jsonrpc":"2.0","method":"tick","params":null}"#
            ),
            (.notification(ControlNotification(method: "tick")), -3, #"{"jsonrpc":"2.0","method":"tick"}"#),
            (
                .notification(.epitaph(status: -1, code: -32050, reason: "mismatched count")), 0,
                #"{"jsonrpc":"2.0","method":"rpc.epitaph","params":{"status":-1,"code":-32050,"reason":"mismatched count"}}"#
            ),
        ])
    func exactBytes(_ message: ControlMessage, _ fds: Int, _ expected: String) throws {
        #expect(text(message.encoded(fileDescriptorCount: fds)) == expected)
        #expect(try parse(expected) == message)
    }

    @Test("encode then parse gives the same message, for every kind")
    func roundTrip() throws {
        var random = TestRandom(seed: 42)
        for _ in 0..<500 {
            let message = randomControlMessage(&random)
            let bytes = message.encoded(fileDescriptorCount: 2)
            let value = try bytes.withUnsafeBytes { try JSONValue(parsing: $0) }
            #expect(try ControlMessage(parsing: value) == message)
            #expect(value["fds"] == 2)
        }
    }

    @Test("error codes and descriptions of the control layer")
    func errorCodes() {
        #expect(JSONRPCErrorObject.fileDescriptorErrorCode == -32050)
        #expect(JSONRPCErrorObject.methodNotFoundCode == -32601)
        #expect(JSONRPCErrorObject.invalidRequestCode == -32600)
        #expect(JSONRPCErrorObject.parseErrorCode == -32700)
        #expect(JSONRPCErrorObject.fileDescriptorError().message == "File Descriptor Error")
        let errors: [ControlError] = [
            .framing(JSONSyntaxError(offset: 3, reason: .unexpectedByte(0x78))), .invalidUTF8(offset: 1),
            .nestingTooDeep(limit: 128), .messageTooLarge(limit: 10), .topLevelNotObject(.array),
            .invalidFileDescriptorCount(found: "-1"), .tooManyFileDescriptors(count: 2000, limit: 1024),
            .mismatchedCount(expected: 2, queued: 0), .truncatedAtEndOfInput(received: 5),
        ]
        for error in errors {
            #expect(error.isFatal)
            #expect(error.jsonRPCCode == -32050)
            #expect(!error.description.isEmpty)
        }
        #expect(ControlError.invalidJSONRPC(.missingVersion).jsonRPCCode == -32600)
        #expect(ControlError.mismatchedCount(expected: 2, queued: 0).description.contains("2"))
    }
}

@Suite("ControlMessage JSONValue")
struct JSONValueTests {
    @Test("parsing decodes escapes and keeps numbers as written")
    func parsing() throws {
        let value = try JSONValue(
            parsing: #" {"s":"\u00e9\ud83d\ude00\n\/\"\\","n":[-0,1.50,1E+2,12345678901234567890123],"t":true} "#)
        #expect(value["s"] == .string("é😀\n/\"\\"))
        #expect(
            value["n"]
                == .array([
                    .number(JSONNumber(text: "-0")!), .number(JSONNumber(text: "1.50")!),
                    .number(JSONNumber(text: "1E+2")!), .number(JSONNumber(text: "12345678901234567890123")!),
                ]))
        #expect(value["t"] == true)
        #expect(value.jsonText == #"{"s":"é😀\n/\"\\","n":[-0,1.50,1E+2,12345678901234567890123],"t":true}"#)
    }

    @Test("parsing refuses what the scanner refuses, plus trailing bytes and empty input")
    func parsingErrors() throws {
        #expect(throws: JSONSyntaxError(offset: 3, reason: .trailingBytes(UInt8(ascii: "x")))) {
            try JSONValue(parsing: "[] x")
        }
        #expect(throws: JSONSyntaxError(offset: 0, reason: .unexpectedEndOfInput)) { try JSONValue(parsing: "") }
        #expect(throws: JSONSyntaxError(offset: 5, reason: .unexpectedEndOfInput)) { try JSONValue(parsing: "[1, 2") }
        #expect(throws: JSONSyntaxError(offset: 7, reason: .loneSurrogate(0xD800))) {
            try JSONValue(parsing: #""\ud800""#)
        }
        #expect(try JSONValue(parsing: " 12 ") == 12)
        #expect(try JSONValue(parsing: "-1.5e3") == .number(JSONNumber(text: "-1.5e3")!))
    }

    @Test("deep input is refused by the limit, never by the stack")
    func deepInput() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONSyntaxError(offset: 128, reason: .nestingTooDeep(limit: 128))) {
            try JSONValue(parsing: deep)
        }
        let wide = JSONLimits(maxDepth: 100_000)
        let value = try? JSONValue(
            parsing: String(repeating: "[", count: 2000) + String(repeating: "]", count: 2000), limits: wide)
        #expect(value != nil)
    }

    @Test("the internal builder enforces the depth limit on its own")
    func builderDepth() {
        let bytes = Array("[[[[[]]]]]".utf8)
        #expect(throws: JSONSyntaxError(offset: 4, reason: .nestingTooDeep(limit: 4))) {
            try bytes.withUnsafeBytes { try JSONValue(scanned: $0, from: 0, to: $0.count, maxDepth: 4) }
        }
    }

    @Test("duplicate keys: members kept in order, lookups see the last")
    func duplicateKeys() throws {
        let value = try JSONValue(parsing: #"{"a":1,"b":2,"a":3}"#)
        #expect(value["a"] == 3)
        #expect(value.objectValue?.members.map(\.key) == ["a", "b", "a"])
        #expect(value.jsonText == #"{"a":1,"b":2,"a":3}"#)
        var object = value.objectValue ?? [:]
        object["a"] = 4
        #expect(JSONValue.object(object).jsonText == #"{"a":1,"b":2,"a":4}"#)
        object["a"] = nil
        #expect(JSONValue.object(object).jsonText == #"{"b":2}"#)
        #expect(object.contains(key: "b") && !object.contains(key: "a"))
    }

    @Test("serialization escapes only what RFC 8259 requires")
    func serialization() {
        let value: JSONValue = ["k\"": "a\"b\\c/d\u{8}\u{C}\n\r\t\u{0}\u{1F}\u{7F}é😀\u{2028}"]
        #expect(value.jsonText == "{\"k\\\"\":\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0000\\u001f\u{7F}é😀\u{2028}\"}")
        #expect(JSONValue.array([.null, true, false, 1.5, [], [:]]).jsonText == "[null,true,false,1.5,[],{}]")
    }

    @Test("random values survive serialize-then-parse, whole and pretty-printed")
    func randomRoundTrip() throws {
        var random = TestRandom(seed: 7)
        for _ in 0..<1000 {
            let value = randomJSONValue(&random)
            let compact = value.serialized()
            #expect(try compact.withUnsafeBytes { try JSONValue(parsing: $0) } == value)
            let pretty = prettyPrinted(value, &random)
            #expect(try pretty.withUnsafeBytes { try JSONValue(parsing: $0) } == value)
        }
    }

    @Test("JSONNumber keeps text and converts only exact integers")
    func numbers() {
        #expect(JSONNumber(text: "01") == nil)
        #expect(JSONNumber(text: "+1") == nil)
        #expect(JSONNumber(text: "1.") == nil)
        #expect(JSONNumber(text: ".5") == nil)
        #expect(JSONNumber(text: "1e") == nil)
        #expect(JSONNumber(text: "NaN") == nil)
        #expect(JSONNumber(text: "") == nil)
        #expect(JSONNumber(text: "-0")?.int64 == 0)
        #expect(JSONNumber(text: "-0")?.uint64 == 0)
        #expect(JSONNumber(text: "9223372036854775807")?.int64 == Int64.max)
        #expect(JSONNumber(text: "9223372036854775808")?.int64 == nil)
        #expect(JSONNumber(text: "18446744073709551615")?.uint64 == UInt64.max)
        #expect(JSONNumber(text: "1.0")?.int64 == nil)
        #expect(JSONNumber(text: "1e0")?.isInteger == false)
        #expect(JSONNumber(text: "-12")?.uint64 == nil)
        #expect(JSONNumber(text: "2.5e-1")?.double == 0.25)
        #expect(JSONNumber(text: "1e400")?.double == nil)
        #expect(JSONNumber(Double.infinity) == nil)
        #expect(JSONNumber(Double(0.1))?.text == "0.1")
        #expect(JSONNumber(text: "1") != JSONNumber(text: "1.0"))
        #expect(JSONNumber(Int64.min).text == "-9223372036854775808")
    }
}
