/// Limits on one JSON value, checked while it is scanned.
/// The default JSON nesting limit: 128, serde_json's recursion limit.
@usableFromInline package let defaultMaxJSONDepth = 128
/// The default size limit of one JSON value: 16 MiB.
@usableFromInline package let defaultMaxJSONMessageBytes = 16 * 1024 * 1024

@_spi(Internals) public struct JSONLimits: Hashable, Sendable {
    /// The default ``maxDepth``: 128, serde_json's recursion limit.
    @_spi(Internals) public static let defaultMaxDepth = defaultMaxJSONDepth
    /// The default ``maxMessageBytes``: 16 MiB.
    @_spi(Internals) public static let defaultMaxMessageBytes = defaultMaxJSONMessageBytes

    /// The most containers (objects and arrays) that may be open at once. A value with
    /// exactly this many nested containers is accepted; one more is
    /// ``JSONSyntaxError/Reason/nestingTooDeep(limit:)``.
    @_spi(Internals) public var maxDepth: Int
    /// The most bytes one value may take, counted from its first byte to its last.
    /// Leading whitespace is not part of the value but is held to the same bound
    /// (``JSONSyntaxError/Reason/whitespaceTooLong(limit:)``), so a peer cannot grow the
    /// buffer forever without starting a value.
    @_spi(Internals) public var maxMessageBytes: Int

    /// Creates limits; negative values count as 0.
    @_spi(Internals) public init(maxDepth: Int = defaultMaxDepth, maxMessageBytes: Int = defaultMaxMessageBytes) {
        self.maxDepth = max(0, maxDepth)
        self.maxMessageBytes = max(0, maxMessageBytes)
    }
}

/// The kind of a JSON value, known from its first byte.
@_spi(Internals) public enum JSONValueKind: Hashable, Sendable, CustomStringConvertible {
    /// `{…}`
    case object
    /// `[…]`
    case array
    /// `"…"`
    case string
    /// `-` or a digit.
    case number
    /// `true` or `false`.
    case bool
    /// `null`
    case null

    /// The kind a value starting with `byte` would have, or `nil` if no value starts so.
    @_spi(Internals) public init?(firstByte byte: UInt8) {
        switch byte {
        case UInt8(ascii: "{"): self = .object
        case UInt8(ascii: "["): self = .array
        case UInt8(ascii: "\""): self = .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): self = .number
        case UInt8(ascii: "t"), UInt8(ascii: "f"): self = .bool
        case UInt8(ascii: "n"): self = .null
        default: return nil
        }
    }

    /// `object`, `array`, `string`, `number`, `bool` or `null`.
    @_spi(Internals) public var description: String {
        switch self {
        case .object: "object"
        case .array: "array"
        case .string: "string"
        case .number: "number"
        case .bool: "bool"
        case .null: "null"
        }
    }
}

/// Why bytes are not one acceptable JSON value, and where that became certain.
@_spi(Internals) public struct JSONSyntaxError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was wrong.
    @_spi(Internals) public enum Reason: Hashable, Sendable {
        /// A byte that cannot appear at this point of the grammar.
        case unexpectedByte(UInt8)
        /// A byte that breaks `true`, `false` or `null`.
        case invalidLiteral(UInt8)
        /// A byte that breaks the number grammar (e.g. a leading zero, `1.`, `1e`, `-x`).
        case invalidNumber(UInt8)
        /// `\` followed by a byte that starts no escape.
        case invalidEscape(UInt8)
        /// A non-hex byte inside `\uXXXX`.
        case invalidUnicodeEscape(UInt8)
        /// A `\u` escape of a surrogate that is not part of a high-low pair; carries the
        /// unpaired code unit. Lone surrogates are rejected: they cannot be represented
        /// in a Swift `String` without loss, and serde_json rejects them too.
        case loneSurrogate(UInt16)
        /// A raw byte below 0x20 inside a string (it must be escaped).
        case controlCharacterInString(UInt8)
        /// A byte that is not valid UTF-8 at this point: a stray continuation byte, an
        /// overlong form, an encoded surrogate, a code point above U+10FFFF, or a
        /// sequence cut short.
        case invalidUTF8(UInt8)
        /// More than `limit` containers open at once.
        case nestingTooDeep(limit: Int)
        /// The value reached `limit` bytes without ending.
        case messageTooLarge(limit: Int)
        /// More than `limit` whitespace bytes before a value.
        case whitespaceTooLong(limit: Int)
        /// The scanner requires an object and the value starts as another kind.
        case topLevelNotObject(JSONValueKind)
        /// The input ended inside a value (reported only when told the input ended).
        case unexpectedEndOfInput
        /// Bytes other than whitespace after a complete value (`JSONValue(parsing:)`).
        case trailingBytes(UInt8)
    }

    /// Offset of the offending byte from the start of the buffer that was scanned. For
    /// ``Reason/messageTooLarge(limit:)`` it is the first offset beyond the limit, for
    /// ``Reason/unexpectedEndOfInput`` the end of the input.
    @_spi(Internals) public var offset: Int
    /// What was wrong.
    @_spi(Internals) public var reason: Reason

    /// Creates an error at `offset`.
    @_spi(Internals) public init(offset: Int, reason: Reason) {
        self.offset = offset
        self.reason = reason
    }

    /// A one-line explanation with the offset.
    @_spi(Internals) public var description: String {
        func hex(_ byte: UInt8) -> String {
            let digits = String(byte, radix: 16, uppercase: true)
            return "0x" + (digits.count < 2 ? "0" : "") + digits
        }
        let what: String
        switch reason {
        case let .unexpectedByte(b): what = "unexpected byte \(hex(b))"
        case let .invalidLiteral(b): what = "invalid literal (byte \(hex(b)))"
        case let .invalidNumber(b): what = "invalid number (byte \(hex(b)))"
        case let .invalidEscape(b): what = "invalid escape \\\(hex(b))"
        case let .invalidUnicodeEscape(b): what = "invalid \\u escape (byte \(hex(b)))"
        case let .loneSurrogate(unit):
            what = "unpaired surrogate \\u\(String(unit, radix: 16, uppercase: true))"
        case let .controlCharacterInString(b): what = "unescaped control character \(hex(b)) in string"
        case let .invalidUTF8(b): what = "invalid UTF-8 (byte \(hex(b)))"
        case let .nestingTooDeep(limit): what = "nesting deeper than \(limit)"
        case let .messageTooLarge(limit): what = "value larger than \(limit) bytes"
        case let .whitespaceTooLong(limit): what = "more than \(limit) bytes of whitespace before a value"
        case let .topLevelNotObject(kind):
            what = "top-level value is \(kind == .array || kind == .object ? "an" : "a") \(kind), not an object"
        case .unexpectedEndOfInput: what = "input ended inside a value"
        case let .trailingBytes(b): what = "byte \(hex(b)) after the value"
        }
        return "\(what) at offset \(offset)"
    }
}

/// What ``JSONScanner/scan(_:endOfInput:)`` found.
@_spi(Internals) public enum JSONScanStatus: Hashable, Sendable {
    /// The value is not complete yet (or, when told the input ended, no value began:
    /// the input held only whitespace).
    case needMore
    /// One value spans `valueStart..<end` of the buffer; bytes before `valueStart` are
    /// whitespace, bytes from `end` on were not examined.
    case complete(valueStart: Int, end: Int)
    /// The bytes are not an acceptable value; the scanner stays failed until ``JSONScanner/reset()``.
    case failed(JSONSyntaxError)
}

/// An incremental RFC 8259 scanner that finds the end of one JSON value at the front of
/// a growing buffer.
///
/// The caller passes the whole unconsumed buffer on each call; between calls the
/// buffer may only grow by appends (its base address may change). The scanner keeps
/// its place, so every byte is examined once however the stream is split. It skips
/// leading whitespace (SP, HT, LF, CR only) and validates the value fully: literals,
/// the number grammar, string escapes (surrogate escapes must pair; lone surrogates
/// are errors), UTF-8 (no overlongs, encoded surrogates or code points above
/// U+10FFFF) and unescaped control characters. Limits are errors as soon as they are
/// certain, before the value ends. It allocates nothing per byte or token; the only
/// storage is one bit per open container.
///
/// After `.complete` or `.failed` every call returns the same status until ``reset()``.
/// A top-level number can only end at a byte that cannot continue it, so it stays
/// `.needMore` at the end of the buffer unless `endOfInput` is set.
@_spi(Internals) public struct JSONScanner: Sendable {
    /// The limits this scanner enforces.
    @_spi(Internals) public let limits: JSONLimits
    /// Whether a top-level value other than an object fails at its first byte.
    @_spi(Internals) public let requiresObject: Bool
    /// The kind of the top-level value, known once its first byte was scanned.
    @_spi(Internals) public private(set) var topLevelKind: JSONValueKind?
    /// Offset of the top-level value's first byte, once seen.
    @_spi(Internals) public var valueStart: Int? { start >= 0 ? start : nil }

    /// Bytes passed over so far, summed across calls and values (for tests of linear work).
    internal private(set) var bytesExamined = 0

    private var position = 0
    private var start = -1
    private var state = State.leadingWhitespace
    private var depth = 0
    /// Bit `d` set: the container at depth `d + 1` is an object.
    private var objectBits: [UInt64] = []
    private var stringIsKey = false
    /// Remaining bytes of a literal, little-endian, and how many.
    private var literalBytes: UInt32 = 0
    private var literalCount: UInt8 = 0
    private var hexCount: UInt8 = 0
    private var codeUnit: UInt16 = 0
    private var highSurrogate: UInt16 = 0
    private var utf8Remaining: UInt8 = 0
    private var utf8Low: UInt8 = 0x80
    private var utf8High: UInt8 = 0xBF
    private var finished: JSONScanStatus?

    private enum State: UInt8 {
        case leadingWhitespace, value, arrayFirst, objectFirst, key, colon, afterValue
        case string, escape, unicodeEscape, surrogateBackslash, surrogateU, utf8
        case numberMinus, numberZero, numberInteger, numberDot, numberFraction
        case numberE, numberExponentSign, numberExponent
        case literal

        /// States in which the number read so far is complete.
        var endsNumber: Bool {
            self == .numberZero || self == .numberInteger || self == .numberFraction || self == .numberExponent
        }
    }

    /// Creates a scanner at the start of a value.
    /// - Parameters:
    ///   - limits: Depth and size bounds.
    ///   - requiresObject: Fail with ``JSONSyntaxError/Reason/topLevelNotObject(_:)`` as
    ///     soon as the first byte of the value is not `{`.
    @_spi(Internals) public init(limits: JSONLimits = .init(), requiresObject: Bool = false) {
        self.limits = limits
        self.requiresObject = requiresObject
    }

    /// Forgets the current value so the next ``scan(_:endOfInput:)`` starts a new one at
    /// offset 0 of the buffer it is given.
    @_spi(Internals) public mutating func reset() {
        // Keep the container bits' storage and the work counter; everything else restarts.
        let bits = objectBits
        let examined = bytesExamined
        self = JSONScanner(limits: limits, requiresObject: requiresObject)
        objectBits = bits
        bytesExamined = examined
    }

    /// Continues scanning the value at the front of `buffer`.
    ///
    /// - Parameters:
    ///   - buffer: All unconsumed bytes: what the previous call saw plus any appended bytes.
    ///   - endOfInput: No more bytes will come. A top-level number then ends at the end of
    ///     the buffer; a value cut short fails with
    ///     ``JSONSyntaxError/Reason/unexpectedEndOfInput``; a buffer of only whitespace
    ///     gives `.needMore` (there is no value).
    /// - Precondition: `buffer.count` is at least the count of the previous call's buffer.
    @_spi(Internals) public mutating func scan(
        _ buffer: UnsafeRawBufferPointer, endOfInput: Bool = false
    ) -> JSONScanStatus {
        if let finished { return finished }
        precondition(buffer.count >= position, "JSONScanner: the buffer shrank between calls")
        let before = position
        let status = run(buffer, endOfInput: endOfInput)
        bytesExamined += position - before
        if case .needMore = status {} else { finished = status }
        return status
    }

    // MARK: - The state machine

    private mutating func run(_ buffer: UnsafeRawBufferPointer, endOfInput: Bool) -> JSONScanStatus {
        let count = buffer.count
        guard let base = buffer.baseAddress else {
            return endOfInput && start >= 0 ? fail(0, .unexpectedEndOfInput) : .needMore
        }
        var pos = position
        defer { position = pos }

        if state == .leadingWhitespace {
            while pos < count {
                let b = base.load(fromByteOffset: pos, as: UInt8.self)
                guard isWhitespace(b) else { break }
                if pos >= limits.maxMessageBytes { return fail(pos, .whitespaceTooLong(limit: limits.maxMessageBytes)) }
                pos &+= 1
            }
            if pos == count { return .needMore }
            let b = base.load(fromByteOffset: pos, as: UInt8.self)
            guard let kind = JSONValueKind(firstByte: b) else { return fail(pos, .unexpectedByte(b)) }
            if requiresObject && kind != .object { return fail(pos, .topLevelNotObject(kind)) }
            start = pos
            topLevelKind = kind
            state = .value
        }

        let limitEnd = limits.maxMessageBytes > Int.max - start ? Int.max : start + limits.maxMessageBytes
        let end = min(count, limitEnd)

        while pos < end {
            let b = base.load(fromByteOffset: pos, as: UInt8.self)
            switch state {
            case .string:
                content: while true {
                    pos = skipPlainStringBytes(base, from: pos, to: end)
                    guard pos < end else { break content }
                    let c = base.load(fromByteOffset: pos, as: UInt8.self)
                    if c >= 0x80 {
                        guard let lead = utf8Lead(c) else { return fail(pos, .invalidUTF8(c)) }
                        pos &+= 1
                        guard pos &+ Int(lead.remaining) <= end else {
                            // The sequence continues in bytes not received yet.
                            utf8Remaining = lead.remaining
                            utf8Low = lead.low
                            utf8High = lead.high
                            state = .utf8
                            break content
                        }
                        let c1 = base.load(fromByteOffset: pos, as: UInt8.self)
                        guard c1 >= lead.low && c1 <= lead.high else { return fail(pos, .invalidUTF8(c1)) }
                        pos &+= 1
                        var rest = lead.remaining &- 1
                        while rest > 0 {
                            let cn = base.load(fromByteOffset: pos, as: UInt8.self)
                            guard cn & 0xC0 == 0x80 else { return fail(pos, .invalidUTF8(cn)) }
                            pos &+= 1
                            rest &-= 1
                        }
                    } else if c == UInt8(ascii: "\"") {
                        pos &+= 1
                        if stringIsKey {
                            state = .colon
                        } else if let done = valueEnded(at: pos) {
                            return done
                        }
                        break content
                    } else if c == UInt8(ascii: "\\") {
                        pos &+= 1
                        state = .escape
                        break content
                    } else {
                        return fail(pos, .controlCharacterInString(c))
                    }
                }

            case .utf8:
                guard b >= utf8Low && b <= utf8High else { return fail(pos, .invalidUTF8(b)) }
                pos &+= 1
                utf8Low = 0x80
                utf8High = 0xBF
                utf8Remaining &-= 1
                if utf8Remaining == 0 { state = .string }

            case .escape:
                switch b {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                    UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    state = .string
                case UInt8(ascii: "u"):
                    hexCount = 0
                    codeUnit = 0
                    state = .unicodeEscape
                default:
                    return fail(pos, .invalidEscape(b))
                }
                pos &+= 1

            case .unicodeEscape:
                guard let digit = hexValue(b) else { return fail(pos, .invalidUnicodeEscape(b)) }
                codeUnit = codeUnit << 4 | UInt16(digit)
                hexCount &+= 1
                if hexCount == 4 {
                    let unit = codeUnit
                    if highSurrogate != 0 {
                        guard unit >= 0xDC00 && unit <= 0xDFFF else { return fail(pos, .loneSurrogate(highSurrogate)) }
                        highSurrogate = 0
                        state = .string
                    } else if unit >= 0xD800 && unit <= 0xDBFF {
                        highSurrogate = unit
                        state = .surrogateBackslash
                    } else if unit >= 0xDC00 && unit <= 0xDFFF {
                        return fail(pos, .loneSurrogate(unit))
                    } else {
                        state = .string
                    }
                }
                pos &+= 1

            case .surrogateBackslash:
                guard b == UInt8(ascii: "\\") else { return fail(pos, .loneSurrogate(highSurrogate)) }
                state = .surrogateU
                pos &+= 1

            case .surrogateU:
                guard b == UInt8(ascii: "u") else { return fail(pos, .loneSurrogate(highSurrogate)) }
                hexCount = 0
                codeUnit = 0
                state = .unicodeEscape
                pos &+= 1

            case .value:
                if isWhitespace(b) {
                    pos &+= 1
                } else if let failure = beginValue(b, at: &pos) {
                    return failure
                }

            case .arrayFirst:
                if isWhitespace(b) {
                    pos &+= 1
                } else if b == UInt8(ascii: "]") {
                    pos &+= 1
                    depth &-= 1
                    if let done = valueEnded(at: pos) { return done }
                } else if let failure = beginValue(b, at: &pos) {
                    return failure
                }

            case .objectFirst, .key:
                if isWhitespace(b) {
                    pos &+= 1
                } else if b == UInt8(ascii: "\"") {
                    pos &+= 1
                    stringIsKey = true
                    state = .string
                } else if b == UInt8(ascii: "}") && state == .objectFirst {
                    pos &+= 1
                    depth &-= 1
                    if let done = valueEnded(at: pos) { return done }
                } else {
                    return fail(pos, .unexpectedByte(b))
                }

            case .colon:
                if isWhitespace(b) {
                    pos &+= 1
                } else if b == UInt8(ascii: ":") {
                    pos &+= 1
                    state = .value
                } else {
                    return fail(pos, .unexpectedByte(b))
                }

            case .afterValue:
                if isWhitespace(b) {
                    pos &+= 1
                    continue
                }
                let inObject = topIsObject
                if b == UInt8(ascii: ",") {
                    state = inObject ? .key : .value
                } else if b == (inObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    depth &-= 1
                    pos &+= 1
                    if let done = valueEnded(at: pos) { return done }
                    continue
                } else {
                    return fail(pos, .unexpectedByte(b))
                }
                pos &+= 1

            case .literal:
                guard b == UInt8(truncatingIfNeeded: literalBytes) else { return fail(pos, .invalidLiteral(b)) }
                pos &+= 1
                literalBytes >>= 8
                literalCount &-= 1
                if literalCount == 0, let done = valueEnded(at: pos) { return done }

            case .numberMinus:
                if b == UInt8(ascii: "0") {
                    state = .numberZero
                } else if isDigit(b) {
                    state = .numberInteger
                } else {
                    return fail(pos, .invalidNumber(b))
                }
                pos &+= 1

            case .numberDot:
                guard isDigit(b) else { return fail(pos, .invalidNumber(b)) }
                state = .numberFraction
                pos &+= 1

            case .numberE:
                if b == UInt8(ascii: "+") || b == UInt8(ascii: "-") {
                    state = .numberExponentSign
                } else if isDigit(b) {
                    state = .numberExponent
                } else {
                    return fail(pos, .invalidNumber(b))
                }
                pos &+= 1

            case .numberExponentSign:
                guard isDigit(b) else { return fail(pos, .invalidNumber(b)) }
                state = .numberExponent
                pos &+= 1

            case .numberZero, .numberInteger, .numberFraction, .numberExponent:
                switch numberStep(b) {
                case .continues:
                    pos &+= 1
                case .invalid:
                    return fail(pos, .invalidNumber(b))
                case .ended:
                    // The byte is not part of the number: look at it again after the value.
                    if let done = valueEnded(at: pos) { return done }
                }

            case .leadingWhitespace:
                // Left before the loop; kept for exhaustiveness.
                return fail(pos, .unexpectedByte(b))
            }
        }

        if pos >= limitEnd {
            // `limits.maxMessageBytes` bytes and the value has not ended.
            if depth == 0 && state.endsNumber {
                // A top-level number ends at the first byte that cannot continue it.
                if count > limitEnd {
                    let next = base.load(fromByteOffset: limitEnd, as: UInt8.self)
                    if case .ended = numberStep(next) { return finish(end: limitEnd) }
                } else if endOfInput {
                    return finish(end: limitEnd)
                } else {
                    return .needMore
                }
            }
            return fail(limitEnd, .messageTooLarge(limit: limits.maxMessageBytes))
        }
        if endOfInput {
            if depth == 0 && state.endsNumber { return finish(end: pos) }
            return fail(pos, .unexpectedEndOfInput)
        }
        return .needMore
    }

    private enum NumberStep { case continues, ended, invalid }

    /// Whether `b` continues the number in a state where the number is complete.
    @inline(__always)
    private mutating func numberStep(_ b: UInt8) -> NumberStep {
        if isDigit(b) {
            if state == .numberZero { return .invalid }
            return .continues
        }
        if b == UInt8(ascii: ".") {
            guard state == .numberZero || state == .numberInteger else { return .invalid }
            state = .numberDot
            return .continues
        }
        if b == UInt8(ascii: "e") || b == UInt8(ascii: "E") {
            guard state != .numberExponent else { return .invalid }
            state = .numberE
            return .continues
        }
        return .ended
    }

    /// Starts the value whose first byte `b` is at `pos`; returns a failure status, if any.
    @inline(__always)
    private mutating func beginValue(_ b: UInt8, at pos: inout Int) -> JSONScanStatus? {
        switch b {
        case UInt8(ascii: "\""):
            stringIsKey = false
            state = .string
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let isObject = b == UInt8(ascii: "{")
            if depth >= limits.maxDepth { return fail(pos, .nestingTooDeep(limit: limits.maxDepth)) }
            let word = depth >> 6
            let bit: UInt64 = 1 << UInt64(depth & 63)
            if word >= objectBits.count { objectBits.append(0) }
            if isObject { objectBits[word] |= bit } else { objectBits[word] &= ~bit }
            depth &+= 1
            state = isObject ? .objectFirst : .arrayFirst
        case UInt8(ascii: "-"): state = .numberMinus
        case UInt8(ascii: "0"): state = .numberZero
        case UInt8(ascii: "1")...UInt8(ascii: "9"): state = .numberInteger
        case UInt8(ascii: "t"): startLiteral("rue")
        case UInt8(ascii: "f"): startLiteral("alse")
        case UInt8(ascii: "n"): startLiteral("ull")
        default: return fail(pos, .unexpectedByte(b))
        }
        pos &+= 1
        return nil
    }

    private mutating func startLiteral(_ rest: StaticString) {
        var packed: UInt32 = 0
        let count = rest.utf8CodeUnitCount
        for i in (0..<count).reversed() {
            packed = packed << 8 | UInt32(rest.utf8Start[i])
        }
        literalBytes = packed
        literalCount = UInt8(count)
        state = .literal
    }

    private var topIsObject: Bool {
        let d = depth &- 1
        return objectBits[d >> 6] & (1 << UInt64(d & 63)) != 0
    }

    /// A value ended just before `end`: the top-level one completes the scan.
    @inline(__always)
    private mutating func valueEnded(at end: Int) -> JSONScanStatus? {
        if depth == 0 { return finish(end: end) }
        state = .afterValue
        return nil
    }

    private func finish(end: Int) -> JSONScanStatus {
        .complete(valueStart: start, end: end)
    }

    private func fail(_ offset: Int, _ reason: JSONSyntaxError.Reason) -> JSONScanStatus {
        .failed(JSONSyntaxError(offset: offset, reason: reason))
    }
}

// MARK: - Byte classes shared with the parser

@inline(__always)
func isWhitespace(_ b: UInt8) -> Bool {
    b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09
}

@inline(__always)
func isDigit(_ b: UInt8) -> Bool {
    b &- UInt8(ascii: "0") < 10
}

@inline(__always)
func hexValue(_ b: UInt8) -> UInt8? {
    if b &- UInt8(ascii: "0") < 10 { return b &- UInt8(ascii: "0") }
    let lower = b | 0x20
    if lower &- UInt8(ascii: "a") < 6 { return lower &- UInt8(ascii: "a") &+ 10 }
    return nil
}

/// The number of continuation bytes after a UTF-8 lead byte and the range allowed for
/// the first of them (Unicode Table 3-7); `nil` for bytes that lead no sequence.
@inline(__always)
func utf8Lead(_ b: UInt8) -> (remaining: UInt8, low: UInt8, high: UInt8)? {
    switch b {
    case 0xC2...0xDF: (1, 0x80, 0xBF)
    case 0xE0: (2, 0xA0, 0xBF)
    case 0xED: (2, 0x80, 0x9F)
    case 0xE1...0xEF: (2, 0x80, 0xBF)
    case 0xF0: (3, 0x90, 0xBF)
    case 0xF1...0xF3: (3, 0x80, 0xBF)
    case 0xF4: (3, 0x80, 0x8F)
    default: nil
    }
}

private let ones: UInt64 = 0x0101_0101_0101_0101
private let highBits: UInt64 = 0x8080_8080_8080_8080

/// High bit set in each byte lane of `w` that equals `byte` (exact for the lowest lane;
/// higher lanes may be false positives).
@inline(__always)
private func lanesEqual(_ w: UInt64, _ byte: UInt8) -> UInt64 {
    let x = w ^ (ones &* UInt64(byte))
    return (x &- ones) & ~x & highBits
}

/// The offset of the first byte in `from..<to` that is `"`, `\`, below 0x20 or above
/// 0x7F: the end of a run of plain ASCII string content. Eight bytes per step.
@inline(__always)
func skipPlainStringBytes(_ base: UnsafeRawPointer, from: Int, to end: Int) -> Int {
    var i = from
    while i &+ 8 <= end {
        let w = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        let control = (w &- ones &* 0x20) & ~w & highBits
        let stop = control | lanesEqual(w, 0x22) | lanesEqual(w, 0x5C) | (w & highBits)
        if stop != 0 { return i &+ stop.trailingZeroBitCount >> 3 }
        i &+= 8
    }
    while i < end {
        let b = base.load(fromByteOffset: i, as: UInt8.self)
        if b < 0x20 || b >= 0x80 || b == 0x22 || b == 0x5C { return i }
        i &+= 1
    }
    return end
}

/// The offset of the first `"` or `\` in `from..<to` (string content already validated).
@inline(__always)
func skipToQuoteOrBackslash(_ base: UnsafeRawPointer, from: Int, to end: Int) -> Int {
    var i = from
    while i &+ 8 <= end {
        let w = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        let stop = lanesEqual(w, 0x22) | lanesEqual(w, 0x5C)
        if stop != 0 { return i &+ stop.trailingZeroBitCount >> 3 }
        i &+= 8
    }
    while i < end {
        let b = base.load(fromByteOffset: i, as: UInt8.self)
        if b == 0x22 || b == 0x5C { return i }
        i &+= 1
    }
    return end
}
