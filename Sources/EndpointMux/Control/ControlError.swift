/// Limits of the JSON-FD control receiver (`ControlDecoder`).
public struct ControlLimits: Hashable, Sendable {
    /// The most bytes one message may take, from its first byte (`{`) to its last
    /// (`}`); also the most whitespace accepted before a message. Default 16 MiB.
    public var maxMessageBytes: Int
    /// The most containers open at once in a message, the top-level object included.
    /// Default 128.
    public var maxDepth: Int
    /// The largest `fds` value one message may declare. Default 1024.
    public var maxFileDescriptorsPerMessage: Int

    /// Creates limits; negative values count as 0.
    public init(
        maxMessageBytes: Int = defaultMaxJSONMessageBytes,
        maxDepth: Int = defaultMaxJSONDepth,
        maxFileDescriptorsPerMessage: Int = 1024
    ) {
        self.maxMessageBytes = max(0, maxMessageBytes)
        self.maxDepth = max(0, maxDepth)
        self.maxFileDescriptorsPerMessage = max(0, maxFileDescriptorsPerMessage)
    }

    /// The scanner limits these imply.
    package var jsonLimits: JSONLimits {
        JSONLimits(maxDepth: maxDepth, maxMessageBytes: maxMessageBytes)
    }
}

/// How a JSON object breaks JSON-RPC 2.0 (as this receiver reads it).
@_spi(Internals) public enum JSONRPCViolation: Hashable, Sendable, CustomStringConvertible {
    /// No `jsonrpc` member.
    case missingVersion
    /// `jsonrpc` is not the string `"2.0"`; carries the compact text found.
    case unsupportedVersion(String)
    /// None of `method`, `result` or `error`.
    case notJSONRPC
    /// `method` is present but not a string.
    case methodNotString
    /// `id` is present but not a number, string or `null`.
    case invalidID
    /// A response (`result` or `error`) without an `id`.
    case responseWithoutID
    /// A response with both `result` and `error`.
    case resultAndError
    /// `error` is not `{"code": integer, "message": string, "data"?: any}`.
    case malformedErrorObject

    /// A one-line explanation.
    @_spi(Internals) public var description: String {
        switch self {
        case .missingVersion: "no \"jsonrpc\" member"
        case let .unsupportedVersion(found): "\"jsonrpc\" is \(found), not \"2.0\""
        case .notJSONRPC: "none of \"method\", \"result\" or \"error\""
        case .methodNotString: "\"method\" is not a string"
        case .invalidID: "\"id\" is not a number, string or null"
        case .responseWithoutID: "a response without \"id\""
        case .resultAndError: "both \"result\" and \"error\""
        case .malformedErrorObject: "\"error\" is not {code: integer, message: string, data?}"
        }
    }
}

/// Errors of the JSON-FD control layer.
///
/// Every case but ``invalidJSONRPC(_:)`` is fatal: the stream can no longer be framed
/// or its file descriptors can no longer be matched to messages, so the connection
/// must be closed and every queued fd closed (spec §7, §8). ``invalidJSONRPC(_:)``
/// leaves framing intact.
@_spi(Internals) public enum ControlError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Bytes that are not JSON (Framing Error); the syntax error carries the offset from
    /// the start of the unconsumed buffer and the reason.
    case framing(JSONSyntaxError)
    /// A string holds bytes that are not valid UTF-8, at `offset` of the buffer.
    case invalidUTF8(offset: Int)
    /// More than `limit` containers open at once.
    case nestingTooDeep(limit: Int)
    /// A message reached `limit` bytes without ending.
    case messageTooLarge(limit: Int)
    /// The top-level value is not an object (e.g. a JSON-RPC batch array); known from
    /// its first byte.
    case topLevelNotObject(JSONValueKind)
    /// `fds` is not a non-negative integer written without fraction or exponent;
    /// carries a short description of what was found.
    case invalidFileDescriptorCount(found: String)
    /// `fds` declares `count` fds, above `limit` (`count` saturates at `Int.max`).
    case tooManyFileDescriptors(count: Int, limit: Int)
    /// A message declared `expected` fds and only `queued` had arrived when the peer
    /// sent non-whitespace bytes or ended the stream (Mismatched Count).
    case mismatchedCount(expected: Int, queued: Int)
    /// The stream ended inside a message, after `received` bytes of it (no fds pending).
    case truncatedAtEndOfInput(received: Int)
    /// A complete object that is not a JSON-RPC 2.0 message. Not fatal: framing holds.
    case invalidJSONRPC(JSONRPCViolation)

    /// Whether the connection must be closed.
    @_spi(Internals) public var isFatal: Bool {
        if case .invalidJSONRPC = self { return false }
        return true
    }

    /// The JSON-RPC error code to report: -32600 (Invalid Request) for
    /// ``invalidJSONRPC(_:)``, -32050 (File Descriptor Error, spec §7) for every
    /// framing and fd fault.
    @_spi(Internals) public var jsonRPCCode: Int {
        if case .invalidJSONRPC = self { return JSONRPCErrorObject.invalidRequestCode }
        return JSONRPCErrorObject.fileDescriptorErrorCode
    }

    /// A one-line explanation.
    @_spi(Internals) public var description: String {
        switch self {
        case let .framing(error): "framing error: \(error)"
        case let .invalidUTF8(offset): "invalid UTF-8 at offset \(offset)"
        case let .nestingTooDeep(limit): "nesting deeper than \(limit)"
        case let .messageTooLarge(limit): "message larger than \(limit) bytes"
        case let .topLevelNotObject(kind): "message is a JSON \(kind), not an object"
        case let .invalidFileDescriptorCount(found): "\"fds\" must be a non-negative integer, found \(found)"
        case let .tooManyFileDescriptors(count, limit): "\"fds\" is \(count), above the limit of \(limit)"
        case let .mismatchedCount(expected, queued):
            "mismatched count: message declared \(expected) fds, \(queued) arrived"
        case let .truncatedAtEndOfInput(received): "stream ended inside a message after \(received) bytes"
        case let .invalidJSONRPC(violation): "invalid JSON-RPC message: \(violation)"
        }
    }

    /// The control-layer error for a scanner or parser failure.
    init(_ error: JSONSyntaxError, valueStart: Int?) {
        switch error.reason {
        case .invalidUTF8: self = .invalidUTF8(offset: error.offset)
        case let .nestingTooDeep(limit): self = .nestingTooDeep(limit: limit)
        case let .messageTooLarge(limit): self = .messageTooLarge(limit: limit)
        case let .topLevelNotObject(kind): self = .topLevelNotObject(kind)
        case .unexpectedEndOfInput: self = .truncatedAtEndOfInput(received: error.offset - (valueStart ?? error.offset))
        default: self = .framing(error)
        }
    }
}
