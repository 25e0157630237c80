/// Errors that end a connection. Each maps to an epitaph status (see ``epitaphStatus``)
/// that the adapter sends before it closes.
public enum MuxError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The v1 framing or the `Frame` body was bad (too large, undecodable).
    case framing(FramingError)
    /// A frame on `0xB232` was not a valid probe.
    case malformedProbe(ProbeError)
    /// A first-party lane (`0x0000`, `0xAD01`, `0xD0FF`) has no business on this endpoint.
    case unexpectedFirstPartyFrame(payloadProtocol: PayloadProtocol)
    /// A lane this daemon does not serve.
    case unservedPayloadProtocol(payloadProtocol: PayloadProtocol)

    public var description: String {
        switch self {
        case let .framing(error): return error.description
        case let .malformedProbe(error): return "malformed identity probe: \(error)"
        case let .unexpectedFirstPartyFrame(lane): return "unexpected first-party frame on lane \(lane)"
        case let .unservedPayloadProtocol(lane): return "payload protocol \(lane) is not served here"
        }
    }
}

extension MuxError {
    /// The epitaph status this error ends a connection with:
    /// frame too large → ``EpitaphStatus/outOfRange``; undecodable or unsupported framing
    /// → ``EpitaphStatus/invalidFrame``; malformed probe → ``EpitaphStatus/invalidArguments``;
    /// first-party or unserved lane → ``EpitaphStatus/notSupported``.
    public var epitaphStatus: EpitaphStatus {
        switch self {
        case .framing(.frameTooLarge): return .outOfRange
        case .framing: return .invalidFrame
        case .malformedProbe: return .invalidArguments
        case .unexpectedFirstPartyFrame, .unservedPayloadProtocol: return .notSupported
        }
    }

    /// The epitaph an adapter sends before closing on this error.
    public var epitaph: Epitaph { Epitaph(status: epitaphStatus, reason: description) }
}
