@_spi(Internals) public import EndpointMux

/// Something a ``ConnectionDriver`` found while reading, for the daemon to act on.
/// Probe answers never appear: the driver writes them itself.
public enum ConnectionEvent: Sendable {
    /// A v1 frame on a served lane (any kind), copied out of the receive buffer.
    case payload(Frame)
    /// Sticky legacy mode: the connection speaks the daemon's own protocol. `bytes` is
    /// everything buffered so far, untouched; the driver has stepped aside and the
    /// daemon now reads the socket itself.
    case legacyTakeover([UInt8])
    /// Per-message legacy mode: one legacy message, as the daemon's decoder delimited it.
    case legacyMessage([UInt8])
    /// A JSON-FD control message and the fds that came with it (owned by the event).
    case control(ReceivedControlMessage)
    /// The connection is over; the daemon should close (or release) its fd.
    case closed(ConnectionEnd)
}

/// Why a connection ended.
public enum ConnectionEnd: Hashable, Sendable, CustomStringConvertible {
    /// The peer closed its side at a message boundary.
    case peerClosed
    /// The peer closed its side in the middle of a message (`bufferedByteCount` bytes).
    case peerClosedMidMessage(bufferedByteCount: Int)
    /// The driver ended the connection after sending this epitaph (nil when none was
    /// sent, e.g. to a legacy client).
    case failed(Epitaph?)
    /// The daemon asked for the close (``ConnectionDriver/close(epitaph:)``).
    case closedByDaemon
    /// A system call failed.
    case transportError(EndpointMuxError)

    public var description: String {
        switch self {
        case .peerClosed: return "peer closed"
        case let .peerClosedMidMessage(n): return "peer closed in the middle of a message (\(n) bytes buffered)"
        case let .failed(epitaph?): return "failed: \(epitaph)"
        case .failed(nil): return "failed"
        case .closedByDaemon: return "closed by the daemon"
        case let .transportError(error): return "transport error: \(error)"
        }
    }
}
