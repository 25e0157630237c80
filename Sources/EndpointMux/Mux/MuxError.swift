/// Errors that end a connection. Each maps to an epitaph status (see ``epitaphStatus``)
/// that the adapter sends before it closes.
@_spi(Internals) public enum MuxError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The v1 framing or the `Frame` body was bad (too large, undecodable).
    case framing(FramingError)
    /// A frame on `0xB232` was not a valid probe.
    case malformedProbe(ProbeError)
    /// A first-party lane (`0x0000`, `0xAD01`, `0xD0FF`) has no business on this endpoint.
    case unexpectedFirstPartyFrame(payloadProtocol: PayloadProtocol)
    /// A lane this daemon does not serve.
    case unservedPayloadProtocol(payloadProtocol: PayloadProtocol)
    /// The JSON-FD control stream broke its rules (framing, limits, `fds`, fd count).
    case control(ControlError)
    /// The input ended inside a v1 frame (only with `endOfInput`).
    case truncatedFrame(bufferedByteCount: Int)

    @_spi(Internals) public var description: String {
        switch self {
        case let .framing(error): return error.description
        case let .malformedProbe(error): return "malformed identity probe: \(error)"
        case let .unexpectedFirstPartyFrame(lane): return "unexpected first-party frame on lane \(lane)"
        case let .unservedPayloadProtocol(lane): return "payload protocol \(lane) is not served here"
        case let .control(error): return error.description
        case let .truncatedFrame(n): return "input ended inside a frame (\(n) bytes buffered)"
        }
    }
}

extension MuxError {
    /// The epitaph status this error ends a connection with:
    /// - frame too large, JSON too deep or too large → ``EpitaphStatus/outOfRange``;
    /// - undecodable frame, JSON syntax or UTF-8 error, non-object → ``EpitaphStatus/invalidFrame``;
    /// - malformed probe, invalid `fds` value → ``EpitaphStatus/invalidArguments``;
    /// - first-party or unserved lane → ``EpitaphStatus/notSupported``;
    /// - too many fds for one message → ``EpitaphStatus/noResources``;
    /// - fd count mismatch, input ending inside a message → ``EpitaphStatus/badState``.
    @_spi(Internals) public var epitaphStatus: EpitaphStatus {
        switch self {
        case .framing(.frameTooLarge): return .outOfRange
        case .framing: return .invalidFrame
        case .malformedProbe: return .invalidArguments
        case .unexpectedFirstPartyFrame, .unservedPayloadProtocol: return .notSupported
        case .truncatedFrame: return .badState
        case let .control(error):
            switch error {
            case .framing, .invalidUTF8, .topLevelNotObject: return .invalidFrame
            case .nestingTooDeep, .messageTooLarge: return .outOfRange
            case .invalidFileDescriptorCount, .invalidJSONRPC: return .invalidArguments
            case .tooManyFileDescriptors: return .noResources
            case .mismatchedCount, .truncatedAtEndOfInput: return .badState
            }
        }
    }

    /// The JSON-RPC error code for the `rpc.epitaph` notification and for requests
    /// still waiting for their fds: -32050 (File Descriptor Error) for framing and fd
    /// faults, -32600 for invalid JSON-RPC.
    @_spi(Internals) public var jsonRPCCode: Int {
        if case let .control(error) = self { return error.jsonRPCCode }
        return JSONRPCErrorObject.fileDescriptorErrorCode
    }

    /// The epitaph an adapter sends before closing on this error.
    @_spi(Internals) public var epitaph: Epitaph { Epitaph(status: epitaphStatus, reason: description) }
}
