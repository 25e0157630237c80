@_spi(Internals) public import EndpointMux
public import NIOCore

/// What ``EndpointMuxHandler`` and ``EndpointMuxDecoder`` hand to the next handler in the
/// pipeline, one message at a time, in the order the peer sent them.
///
/// Identity probes never appear: the mux answers them itself.
public enum EndpointMuxMessage: Hashable, Sendable {
    /// A v1 frame on a lane the mux serves (any kind), copied out of the receive buffer.
    case frame(Frame)
    /// A JSON-RPC control message that declared no file descriptors.
    case control(ControlMessage)
    /// Per-message legacy mode: one message of the daemon's own protocol, exactly as the
    /// daemon's legacy decoder returned it (see ``EndpointMuxLegacyMode/perMessage(_:)``).
    case legacy(ByteBuffer)
}

/// Events the mux fires down the pipeline with `fireUserInboundEventTriggered`.
public enum EndpointMuxEvent: Hashable, Sendable {
    /// Sticky legacy mode: the connection speaks the daemon's own protocol. Fired just
    /// before the buffered bytes are forwarded, untouched, as `ByteBuffer`s; the next
    /// handler may reconfigure the pipeline synchronously here (for example add the
    /// daemon's legacy decoder after itself and remove itself).
    case legacyTakeover
    /// The connection failed and is being closed: the epitaph (if any) was written, the
    /// output side is closing, and every later inbound byte is discarded.
    case failed(EndpointMuxFailure)
}
