/// A JSON number kept as its exact source text, so integers of any size (64-bit ids,
/// bignums) and decimals round-trip byte for byte.
///
/// Equality and hashing compare the text: `1`, `1.0` and `1e0` are different numbers.
public struct JSONNumber: Hashable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral
{
    /// The number as written, following the RFC 8259 grammar.
    public let text: String

    /// Wraps `text` if it follows the RFC 8259 number grammar (no leading `+`, no
    /// leading zeros, no `NaN` or `Infinity`); `nil` otherwise.
    package init?(text: String) {
        var copy = text
        let valid = copy.withUTF8 { Self.isValidGrammar($0) }
        guard valid else { return nil }
        self.text = text
    }

    /// Text already known to follow the grammar (the scanner checked it).
    init(unchecked text: String) {
        self.text = text
    }

    /// The decimal text of `value`.
    public init(_ value: Int) { text = String(value) }
    /// The decimal text of `value`.
    package init(_ value: Int64) { text = String(value) }
    /// The decimal text of `value`.
    package init(_ value: UInt64) { text = String(value) }

    /// The shortest text that reads back as `value`; `nil` for infinities and NaN.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        self.init(text: value.description)
    }

    /// Creates a number from an integer literal.
    public init(integerLiteral value: Int) { self.init(value) }

    /// Creates a number from a float literal; the literal must be finite.
    public init(floatLiteral value: Double) {
        text = value.isFinite ? value.description : "0"
    }

    /// Whether the text is a plain integer: no fraction and no exponent.
    package var isInteger: Bool {
        !text.utf8.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
    }

    /// The value if the text is a plain integer within `Int64`; `nil` otherwise
    /// (`1.0` and `1e0` are `nil`: nothing is converted).
    public var int64: Int64? { Int64(text) }

    /// The value if the text is a plain integer within `UInt64` (`-0` is 0); `nil`
    /// otherwise.
    package var uint64: UInt64? { UInt64(text) }

    /// The nearest `Double`; `nil` when the magnitude is beyond `Double`'s range.
    public var double: Double? {
        guard let value = Double(text), value.isFinite else { return nil }
        return value
    }

    /// The text.
    public var description: String { text }

    static func isValidGrammar(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = bytes.count
        func digits() -> Int {
            let first = i
            while i < n && isDigit(bytes[i]) { i += 1 }
            return i - first
        }
        if i < n && bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < n else { return false }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else if digits() == 0 {
            return false
        }
        if i < n && bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { return false }
        }
        if i < n && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
            i += 1
            if i < n && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
            guard digits() > 0 else { return false }
        }
        return i == n
    }
}

/// One `"key": value` member of a JSON object.
public struct JSONMember: Hashable, Sendable {
    /// The member name.
    public var key: String
    /// The member value.
    public var value: JSONValue

    /// Creates a member.
    package init(key: String, value: JSONValue) {
        self.key = key
        self.value = value
    }
}

/// A JSON object: its members in source order, duplicates kept.
///
/// Lookups by key return the **last** member with that name, as serde_json and Go's
/// encoding/json do. Equality compares the member lists, order included.
public struct JSONObject: Hashable, Sendable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    /// The members in order.
    public var members: [JSONMember]

    /// Creates an object with `members`, in order.
    public init(_ members: [JSONMember] = []) {
        self.members = members
    }

    /// Creates an object from a literal, keeping the written order.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        members = elements.map { JSONMember(key: $0.0, value: $0.1) }
    }

    /// Index of the first member.
    public var startIndex: Int { members.startIndex }
    /// One past the index of the last member.
    public var endIndex: Int { members.endIndex }
    /// The member at `position`.
    public subscript(position: Int) -> JSONMember { members[position] }

    /// The value of the last member named `key`. Setting replaces that member's value or
    /// appends a member; setting `nil` removes every member named `key`.
    public subscript(key: String) -> JSONValue? {
        get { members.last { $0.key == key }?.value }
        set {
            guard let newValue else {
                members.removeAll { $0.key == key }
                return
            }
            if let index = members.lastIndex(where: { $0.key == key }) {
                members[index].value = newValue
            } else {
                members.append(JSONMember(key: key, value: newValue))
            }
        }
    }

    /// Whether a member named `key` exists (even with the value `null`).
    package func contains(key: String) -> Bool {
        members.contains { $0.key == key }
    }

    /// Appends a member, keeping any earlier one with the same name.
    package mutating func append(key: String, value: JSONValue) {
        members.append(JSONMember(key: key, value: value))
    }
}

/// A JSON value (RFC 8259). Numbers keep their exact text and objects keep their
/// member order.
public enum JSONValue: Hashable, Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    /// `null`
    case null
    /// `true` or `false`
    case bool(Bool)
    /// A number, as written.
    case number(JSONNumber)
    /// A string (any Unicode scalars; no lone surrogates).
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object.
    case object(JSONObject)

    /// Creates a string value.
    public init(stringLiteral value: String) { self = .string(value) }
    /// Creates a number value.
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    /// Creates a number value.
    public init(floatLiteral value: Double) { self = .number(JSONNumber(floatLiteral: value)) }
    /// Creates a bool value.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// Creates an array value.
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// Creates an object value, keeping the written order.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { JSONMember(key: $0.0, value: $0.1) }))
    }

    /// The kind of this value.
    package var kind: JSONValueKind {
        switch self {
        case .null: .null
        case .bool: .bool
        case .number: .number
        case .string: .string
        case .array: .array
        case .object: .object
        }
    }

    /// For an object, the value of its last member named `key`; otherwise `nil`.
    public subscript(key: String) -> JSONValue? {
        if case let .object(object) = self { return object[key] }
        return nil
    }

    /// The string, if this is a string.
    public var stringValue: String? {
        if case let .string(value) = self { return value }
        return nil
    }

    /// The number, if this is a number.
    public var numberValue: JSONNumber? {
        if case let .number(value) = self { return value }
        return nil
    }

    /// The object, if this is an object.
    public var objectValue: JSONObject? {
        if case let .object(value) = self { return value }
        return nil
    }

    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? {
        if case let .array(value) = self { return value }
        return nil
    }

    /// The flag, if this is `true` or `false`.
    public var boolValue: Bool? {
        if case let .bool(value) = self { return value }
        return nil
    }

    // MARK: Parsing

    /// Parses exactly one JSON value, optionally surrounded by whitespace.
    ///
    /// The bytes are validated by a ``JSONScanner`` with `limits` first (UTF-8, escapes,
    /// depth, size), then built without recursion.
    /// - Throws: ``JSONSyntaxError``, with ``JSONSyntaxError/Reason/unexpectedEndOfInput``
    ///   for an empty or cut-short input and ``JSONSyntaxError/Reason/trailingBytes(_:)``
    ///   for anything but whitespace after the value.
    @_spi(Internals) public init(
        parsing bytes: UnsafeRawBufferPointer, limits: JSONLimits = .init()
    ) throws(JSONSyntaxError) {
        var scanner = JSONScanner(limits: limits)
        switch scanner.scan(bytes, endOfInput: true) {
        case .needMore:
            throw JSONSyntaxError(offset: bytes.count, reason: .unexpectedEndOfInput)
        case let .failed(error):
            throw error
        case let .complete(valueStart, end):
            for offset in end..<bytes.count where !isWhitespace(bytes[offset]) {
                throw JSONSyntaxError(offset: offset, reason: .trailingBytes(bytes[offset]))
            }
            self = try JSONValue(scanned: bytes, from: valueStart, to: end, maxDepth: limits.maxDepth)
        }
    }

    /// Parses the UTF-8 of `text` as exactly one JSON value, like the
    /// `UnsafeRawBufferPointer` form.
    @_spi(Internals) public init(parsing text: String, limits: JSONLimits = .init()) throws(JSONSyntaxError) {
        var copy = text
        let result = copy.withUTF8 { utf8 -> Result<JSONValue, JSONSyntaxError> in
            do throws(JSONSyntaxError) {
                return .success(try JSONValue(parsing: UnsafeRawBufferPointer(utf8), limits: limits))
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    /// Builds the value in `from..<to`, which a ``JSONScanner`` has already accepted.
    ///
    /// Checks structure, literals and escapes again (cheaply) and never traps, but does
    /// not re-validate UTF-8 or the number grammar. Iterative; at most `maxDepth` open
    /// containers.
    init(scanned buffer: UnsafeRawBufferPointer, from: Int, to: Int, maxDepth: Int) throws(JSONSyntaxError) {
        guard let base = buffer.baseAddress, from >= 0, from <= to, to <= buffer.count else {
            throw JSONSyntaxError(offset: from, reason: .unexpectedEndOfInput)
        }
        var builder = ValueBuilder(base: base, position: from, end: to, maxDepth: maxDepth)
        self = try builder.build()
    }

    // MARK: Serialization

    /// Compact JSON text in UTF-8: no whitespace, members in order, numbers as written,
    /// strings with `"`, `\` and control characters escaped (`\b \f \n \r \t`, else
    /// `\u00xx`) and everything else, non-ASCII included, written as UTF-8.
    @_spi(Internals) public func serialized() -> [UInt8] {
        var bytes: [UInt8] = []
        serialize(into: &bytes)
        return bytes
    }

    /// The compact text of `serialized()` as a `String`.
    public var jsonText: String {
        String(decoding: serialized(), as: UTF8.self)
    }

    /// Appends the compact text of ``serialized()`` to `bytes`. Recurses once per level
    /// of nesting.
    @_spi(Internals) public func serialize(into bytes: inout [UInt8]) {
        switch self {
        case .null:
            bytes.append(contentsOf: "null".utf8)
        case let .bool(flag):
            bytes.append(contentsOf: (flag ? "true" : "false").utf8)
        case let .number(number):
            bytes.append(contentsOf: number.text.utf8)
        case let .string(string):
            appendJSONString(string, to: &bytes)
        case let .array(elements):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                element.serialize(into: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case let .object(object):
            bytes.append(UInt8(ascii: "{"))
            for (index, member) in object.members.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                appendJSONString(member.key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                member.value.serialize(into: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }
}

/// Appends `string` as a JSON string literal (see ``JSONValue/serialized()``).
func appendJSONString(_ string: String, to bytes: inout [UInt8]) {
    bytes.append(UInt8(ascii: "\""))
    var copy = string
    copy.withUTF8 { utf8 in
        var runStart = 0
        for index in utf8.indices {
            let b = utf8[index]
            guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
            runStart = index + 1
            bytes.append(UInt8(ascii: "\\"))
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(b)
            case 0x08: bytes.append(UInt8(ascii: "b"))
            case 0x0C: bytes.append(UInt8(ascii: "f"))
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            default:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [
                    UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 0xF)],
                ])
            }
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
    }
    bytes.append(UInt8(ascii: "\""))
}

/// Appends the UTF-8 encoding of `scalar`.
private func appendUTF8(_ scalar: Unicode.Scalar, to bytes: inout [UInt8]) {
    let v = scalar.value
    switch v {
    case 0..<0x80:
        bytes.append(UInt8(v))
    case 0x80..<0x800:
        bytes.append(UInt8(0xC0 | v >> 6))
        bytes.append(UInt8(0x80 | v & 0x3F))
    case 0x800..<0x10000:
        bytes.append(UInt8(0xE0 | v >> 12))
        bytes.append(UInt8(0x80 | v >> 6 & 0x3F))
        bytes.append(UInt8(0x80 | v & 0x3F))
    default:
        bytes.append(UInt8(0xF0 | v >> 18))
        bytes.append(UInt8(0x80 | v >> 12 & 0x3F))
        bytes.append(UInt8(0x80 | v >> 6 & 0x3F))
        bytes.append(UInt8(0x80 | v & 0x3F))
    }
}

/// The second pass: builds a ``JSONValue`` from scanned bytes with an explicit stack.
private struct ValueBuilder {
    let base: UnsafeRawPointer
    var position: Int
    let end: Int
    let maxDepth: Int

    /// An open container.
    private struct Frame {
        var isObject: Bool
        var elements: [JSONValue] = []
        var members: [JSONMember] = []
        var key = ""
    }

    private func error(_ reason: JSONSyntaxError.Reason, at offset: Int? = nil) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset ?? position, reason: reason)
    }

    private func peek() throws(JSONSyntaxError) -> UInt8 {
        guard position < end else { throw error(.unexpectedEndOfInput) }
        return base.load(fromByteOffset: position, as: UInt8.self)
    }

    private mutating func skipWhitespace() {
        while position < end && isWhitespace(base.load(fromByteOffset: position, as: UInt8.self)) {
            position += 1
        }
    }

    mutating func build() throws(JSONSyntaxError) -> JSONValue {
        var stack: [Frame] = []
        var result = JSONValue.null
        parsing: while true {
            skipWhitespace()
            let b = try peek()
            var value: JSONValue
            switch b {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard stack.count < maxDepth else { throw error(.nestingTooDeep(limit: maxDepth)) }
                let isObject = b == UInt8(ascii: "{")
                position += 1
                skipWhitespace()
                if try peek() == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    position += 1
                    value = isObject ? .object(JSONObject()) : .array([])
                } else {
                    var frame = Frame(isObject: isObject)
                    if isObject { frame.key = try parseKey() }
                    stack.append(frame)
                    continue parsing
                }
            case UInt8(ascii: "\""):
                value = .string(try parseString())
            case UInt8(ascii: "t"):
                try parseLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try parseLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try parseLiteral("null")
                value = .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                value = .number(parseNumber())
            default:
                throw error(.unexpectedByte(b))
            }
            // Hand the finished value to its container, closing containers as they end.
            while let top = stack.indices.last {
                if stack[top].isObject {
                    stack[top].members.append(JSONMember(key: stack[top].key, value: value))
                } else {
                    stack[top].elements.append(value)
                }
                skipWhitespace()
                let c = try peek()
                position += 1
                if c == UInt8(ascii: ",") {
                    if stack[top].isObject {
                        skipWhitespace()
                        stack[top].key = try parseKey()
                    }
                    continue parsing
                }
                guard c == (stack[top].isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) else {
                    throw error(.unexpectedByte(c), at: position - 1)
                }
                let frame = stack.removeLast()
                value = frame.isObject ? .object(JSONObject(frame.members)) : .array(frame.elements)
            }
            result = value
            break parsing
        }
        skipWhitespace()
        if position < end {
            throw error(.trailingBytes(base.load(fromByteOffset: position, as: UInt8.self)))
        }
        return result
    }

    /// Reads `"key"` and the `:` after it.
    private mutating func parseKey() throws(JSONSyntaxError) -> String {
        let b = try peek()
        guard b == UInt8(ascii: "\"") else { throw error(.unexpectedByte(b)) }
        let key = try parseString()
        skipWhitespace()
        let colon = try peek()
        guard colon == UInt8(ascii: ":") else { throw error(.unexpectedByte(colon)) }
        position += 1
        return key
    }

    private mutating func parseLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
        let count = literal.utf8CodeUnitCount
        for i in 0..<count {
            let b = try peek()
            guard b == literal.utf8Start[i] else { throw error(.invalidLiteral(b)) }
            position += 1
        }
    }

    private mutating func parseNumber() -> JSONNumber {
        let first = position
        while position < end {
            let b = base.load(fromByteOffset: position, as: UInt8.self)
            guard
                isDigit(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+") || b == UInt8(ascii: ".")
                    || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
            else { break }
            position += 1
        }
        return JSONNumber(unchecked: text(first..<position))
    }

    private func text(_ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count), as: UTF8.self)
    }

    /// Reads a string whose opening quote is at `position`.
    private mutating func parseString() throws(JSONSyntaxError) -> String {
        position += 1
        var runStart = position
        var stop = skipToQuoteOrBackslash(base, from: runStart, to: end)
        guard stop < end else { throw error(.unexpectedEndOfInput, at: end) }
        if base.load(fromByteOffset: stop, as: UInt8.self) == UInt8(ascii: "\"") {
            position = stop + 1
            return text(runStart..<stop)
        }
        // Escapes: collect the decoded UTF-8.
        var utf8: [UInt8] = []
        utf8.reserveCapacity(stop - runStart + 16)
        while true {
            utf8.append(contentsOf: UnsafeRawBufferPointer(start: base + runStart, count: stop - runStart))
            guard stop < end else { throw error(.unexpectedEndOfInput, at: end) }
            position = stop + 1
            if base.load(fromByteOffset: stop, as: UInt8.self) == UInt8(ascii: "\"") { break }
            let escape = try peek()
            position += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = UInt32(try parseHex4())
                if scalar >= 0xD800 && scalar <= 0xDBFF {
                    let high = scalar
                    guard position + 1 < end, base.load(fromByteOffset: position, as: UInt8.self) == UInt8(ascii: "\\"),
                        base.load(fromByteOffset: position + 1, as: UInt8.self) == UInt8(ascii: "u")
                    else { throw error(.loneSurrogate(UInt16(high))) }
                    position += 2
                    let low = UInt32(try parseHex4())
                    guard low >= 0xDC00 && low <= 0xDFFF else { throw error(.loneSurrogate(UInt16(high))) }
                    scalar = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                    throw error(.loneSurrogate(UInt16(scalar)))
                }
                guard let unicode = Unicode.Scalar(scalar) else {
                    throw error(.loneSurrogate(UInt16(truncatingIfNeeded: scalar)))
                }
                appendUTF8(unicode, to: &utf8)
            default:
                throw error(.invalidEscape(escape), at: position - 1)
            }
            runStart = position
            stop = skipToQuoteOrBackslash(base, from: runStart, to: end)
        }
        return String(decoding: utf8, as: UTF8.self)
    }

    private mutating func parseHex4() throws(JSONSyntaxError) -> UInt16 {
        var unit: UInt16 = 0
        for _ in 0..<4 {
            let b = try peek()
            guard let digit = hexValue(b) else { throw error(.invalidUnicodeEscape(b)) }
            unit = unit << 4 | UInt16(digit)
            position += 1
        }
        return unit
    }
}
