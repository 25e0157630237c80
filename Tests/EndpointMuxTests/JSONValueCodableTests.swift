import Testing
@_spi(Internals) @testable import EndpointMux

private struct Params: Codable, Equatable {
    struct Item: Codable, Equatable {
        var name: String
        var size: UInt64
        var ratio: Double?
    }
    var count: Int
    var prefix: String
    var enabled: Bool
    var items: [Item]
    var tags: [String: Int8]
    var missing: String?
    var float: Float
    var raw: JSONValue
}

private enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case square(side: Int)
    case none
}

/// A recursive value: a linked list `depth` long, for the depth limit.
private final class Node: Codable {
    var next: Node?
    init(depth: Int) { next = depth > 1 ? Node(depth: depth - 1) : nil }
}

/// A type whose own coding code rejects a value.
private struct Even: Codable, Equatable {
    var value: Int
    init(_ value: Int) { self.value = value }
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        value = try container.decode(Int.self)
        guard value % 2 == 0 else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(value) is odd")
        }
    }
    func encode(to encoder: any Encoder) throws {
        guard value % 2 == 0 else {
            throw EncodingError.invalidValue(value, .init(codingPath: encoder.codingPath, debugDescription: "odd"))
        }
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

@Suite struct JSONValueCodableTests {
    private let sample = Params(
        count: 3, prefix: "cli-", enabled: true,
        items: [.init(name: "a", size: UInt64.max, ratio: 0.1), .init(name: "b", size: 0, ratio: nil)],
        tags: ["x": -128], missing: nil, float: 0.1, raw: ["keep": [1, "two", .null]])

    @Test func encodesToTheExpectedTree() throws {
        let value = try JSONValue(encoding: sample)
        #expect(
            value.jsonText
                == #"{"count":3,"prefix":"cli-","enabled":true,"items":[{"name":"a","size":18446744073709551615,"ratio":0.1},{"name":"b","size":0}],"tags":{"x":-128},"float":0.1,"raw":{"keep":[1,"two",null]}}"#
        )
    }

    @Test func roundTrips() throws {
        let value = try JSONValue(encoding: sample)
        #expect(try value.decode(Params.self) == sample)
        // Through text too: what a peer sends is parsed and decoded the same way.
        let parsed = try JSONValue(parsing: value.jsonText)
        #expect(try JSONValueDecoder().decode(Params.self, from: parsed) == sample)
        // Enums with associated values, optionals at the top, arrays of optionals.
        let shapes: [Shape?] = [.circle(radius: 1.5), nil, .square(side: 2), Shape.none]
        #expect(try JSONValue(encoding: shapes).decode([Shape?].self) == shapes)
        #expect(try JSONValue(encoding: Int?.none) == .null)
        #expect(try JSONValue.null.decode(Int?.self) == nil)
    }

    @Test func jsonValueInsideIsKeptExactly() throws {
        // Numbers keep their text: a bignum and 1.0 survive.
        let raw = try JSONValue(parsing: #"{"big":123456789012345678901234567890,"one":1.0,"dup":1,"dup":2}"#)
        #expect(
            try JSONValue(encoding: ["raw": raw]).jsonText
                == #"{"raw":{"big":123456789012345678901234567890,"one":1.0,"dup":1,"dup":2}}"#)
        #expect(try raw.decode(JSONValue.self) == raw)
    }

    @Test func integersMustBeExact() throws {
        #expect(try JSONValue(parsing: "1.0").decode(Int.self) == 1)
        #expect(try JSONValue(parsing: "1e2").decode(UInt8.self) == 100)
        #expect(try JSONValue(parsing: "-0").decode(UInt.self) == 0)
        #expect(try JSONValue(parsing: "12.50e1").decode(Int16.self) == 125)
        #expect(try JSONValue(parsing: "-9223372036854775808").decode(Int64.self) == Int64.min)
        for (text, type) in [
            ("1.5", "Int"), ("256", "UInt8"), ("-1", "UInt"), ("1e400", "Int"), ("9223372036854775808", "Int64"),
        ] {
            let value = try JSONValue(parsing: text)
            let error = #expect(throws: JSONCodingError.self) {
                switch type {
                case "UInt8": _ = try value.decode(UInt8.self)
                case "UInt": _ = try value.decode(UInt.self)
                case "Int64": _ = try value.decode(Int64.self)
                default: _ = try value.decode(Int.self)
                }
            }
            #expect(error?.code == .numberOutOfRange, "\(text) as \(type)")
        }
        let huge = #expect(throws: JSONCodingError.self) { try JSONValue(parsing: "1e400").decode(Double.self) }
        #expect(huge?.code == .numberOutOfRange)
    }

    @Test func typedErrorsWithPaths() throws {
        let wrongType: JSONValue = ["count": "three"]
        let mismatch = #expect(throws: JSONCodingError.self) { try wrongType.decode(Params.self) }
        #expect(mismatch?.code == .typeMismatch)
        #expect(mismatch?.codingPath == "$.count")

        var tree = try JSONValue(encoding: sample)
        if case var .object(object) = tree {
            object["items"] = [["name": "a"]]
            tree = .object(object)
        }
        let missing = #expect(throws: JSONCodingError.self) { try tree.decode(Params.self) }
        #expect(missing?.code == .keyNotFound)
        #expect(missing?.codingPath == "$.items[0].size")

        let null = #expect(throws: JSONCodingError.self) { try JSONValue.null.decode(String.self) }
        #expect(null?.code == .valueNotFound)

        let odd = #expect(throws: JSONCodingError.self) { try JSONValue(3).decode(Even.self) }
        #expect(odd?.code == .invalidValue)
        let oddEncoded = #expect(throws: JSONCodingError.self) { try JSONValue(encoding: [Even(2), Even(3)]) }
        #expect(oddEncoded?.code == .invalidValue)
        #expect(oddEncoded?.codingPath == "$[1]")

        let nan = #expect(throws: JSONCodingError.self) { try JSONValue(encoding: ["x": Double.nan]) }
        #expect(nan?.code == .nonFiniteNumber)
        #expect(nan?.codingPath == "$.x")
        let infinity = #expect(throws: JSONCodingError.self) { try JSONValue(encoding: Float.infinity) }
        #expect(infinity?.code == .nonFiniteNumber)
        #expect(try JSONValue(parsing: "1e39").decode(Double.self) == 1e39)
        let tooBig = #expect(throws: JSONCodingError.self) { try JSONValue(parsing: "1e39").decode(Float.self) }
        #expect(tooBig?.code == .numberOutOfRange)
    }

    /// The scanner's depth limit (128) holds when encoding: 128 nested containers are
    /// accepted (and parse back), 129 are refused while encoding, without running away.
    @Test func depthLimitWhileEncoding() throws {
        let deepest = try JSONValue(encoding: Node(depth: 128))
        let text = deepest.jsonText
        #expect(try JSONValue(parsing: text) == deepest)

        let error = #expect(throws: JSONCodingError.self) { try JSONValue(encoding: Node(depth: 129)) }
        #expect(error?.code == .nestingTooDeep)
        // A very deep value fails at the limit, not at the bottom of the stack.
        let runaway = #expect(throws: JSONCodingError.self) { try JSONValue(encoding: Node(depth: 5000)) }
        #expect(runaway?.code == .nestingTooDeep)
        // Tighter limits are honoured; so is the size limit.
        let tight = JSONValueEncoder(limits: JSONLimits(maxDepth: 2))
        #expect(throws: JSONCodingError.self) { try tight.encode([[[1]]]) }
        #expect(try tight.encode([[1]]) == [[1]])
        let small = JSONValueEncoder(limits: JSONLimits(maxMessageBytes: 8))
        let size = #expect(throws: JSONCodingError.self) { try small.encode("0123456789") }
        #expect(size?.code == .messageTooLarge)
    }

    @Test func depthLimitWhileDecoding() throws {
        var deep: JSONValue = .null
        for _ in 0..<200 { deep = ["next": deep] }
        let error = #expect(throws: JSONCodingError.self) { try deep.decode(Node.self) }
        #expect(error?.code == .nestingTooDeep)
        var ok: JSONValue = .null
        for _ in 0..<128 { ok = ["next": ok] }
        #expect(throws: Never.self) { try ok.decode(Node.self) }
    }

    /// Control params and results: a typed request built and read back through the bridge.
    @Test func controlRequestParams() throws {
        struct CreateFds: Codable, Equatable { var count: Int; var prefix: String }
        let request = ControlRequest(
            method: "createFds", params: try JSONValue(encoding: CreateFds(count: 3, prefix: "x")), id: 1)
        let bytes = ControlMessage.request(request).encoded()
        #expect(
            String(decoding: bytes, as: UTF8.self)
                == #"{"jsonrpc":"2.0","method":"createFds","params":{"count":3,"prefix":"x"},"id":1}"#)
        let parsed = try ControlMessage(parsing: try JSONValue(parsing: String(decoding: bytes, as: UTF8.self)))
        guard case let .request(received) = parsed, let params = received.params else {
            Issue.record("not a request with params")
            return
        }
        #expect(try params.decode(CreateFds.self) == CreateFds(count: 3, prefix: "x"))
    }

    @Test func exactIntegerText() {
        #expect(JSONIntegerText.exact("0.000", as: Int.self) == 0)
        #expect(JSONIntegerText.exact("1000e-3", as: Int.self) == 1)
        #expect(JSONIntegerText.exact("1001e-3", as: Int.self) == nil)
        #expect(JSONIntegerText.exact("1e-1000000000", as: Int.self) == nil)
        #expect(JSONIntegerText.exact("0e1000000000", as: Int.self) == 0)
        #expect(JSONIntegerText.exact("255", as: UInt8.self) == 255)
        #expect(JSONIntegerText.exact("-128", as: Int8.self) == -128)
        #expect(JSONIntegerText.exact("-129", as: Int8.self) == nil)
    }
}
