@_spi(Internals) public import EndpointMux

/// Why ``EndpointMuxHandler`` or ``EndpointMuxDecoder`` ended a connection; delivered as
/// ``EndpointMuxEvent/failed(_:)`` once the connection is over (after the epitaph was
/// written, the output shut down and the peer closed or the drain timeout passed).
///
/// The connection engine (the same one the POSIX `ConnectionDriver` runs) decides every
/// failure and its epitaph: a v1 epitaph frame, an `rpc.epitaph` notification for
/// JSON-FD peers and for input that looks like JSON (after a -32050 answer to a request
/// still waiting for its fds), or nothing for peers that spoke the daemon's legacy
/// protocol.
public enum EndpointMuxFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// The engine ended the connection after sending this epitaph (its status and reason
    /// say why: `MuxError/epitaph` for a refused frame or probe, the control layer's
    /// status for bad JSON-FD input, `EpitaphStatus/timedOut` for a timeout — including
    /// a control message that declared file descriptors, which SwiftNIO cannot receive —
    /// and `EpitaphStatus/invalidFrame` for bytes the daemon has no protocol for).
    case epitaph(Epitaph)
    /// Per-message legacy mode: more than `limit` bytes buffered without a complete
    /// legacy message. No epitaph.
    case legacyMessageTooLarge(limit: Int)
    /// Per-message legacy mode: the daemon's legacy decoder threw, or returned a message
    /// without consuming bytes. No epitaph.
    case legacyDecoderFailed(reason: String)
    /// The connection failed after its peer spoke the daemon's legacy protocol, so no
    /// epitaph was sent (a legacy peer would not understand one).
    case withoutEpitaph

    /// The epitaph sent to the peer, if any.
    public var epitaph: Epitaph? {
        if case let .epitaph(epitaph) = self { return epitaph }
        return nil
    }

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .epitaph(epitaph): return "ended with epitaph \(epitaph)"
        case let .legacyMessageTooLarge(limit): return "legacy message larger than \(limit) bytes"
        case let .legacyDecoderFailed(reason): return "legacy decoder failed: \(reason)"
        case .withoutEpitaph: return "failed after the peer spoke the legacy protocol (no epitaph)"
        }
    }
}
