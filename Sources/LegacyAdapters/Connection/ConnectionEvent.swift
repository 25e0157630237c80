@_spi(Internals) public import EndpointMux

/// Something a ``ConnectionDriver`` found while reading, for the daemon to act on.
/// Probe answers never appear: the driver writes them itself.
///
/// This enum is closed: its cases are the kinds of traffic the connection carries (v1
/// frames, legacy bytes, control messages) and its end. New information arrives as new
/// properties of ``ConnectionEnd`` or ``ReceivedControlMessage``, never as a new case, so
/// an exhaustive `switch` stays valid across minor versions.
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

/// Why a connection ended: a ``reason`` to match on, the ``epitaph`` sent (if any) and the
/// failed system call (``error``, for ``Reason/transportError``). A struct, so reasons
/// can be added in a minor version (`switch` over ``reason`` with a `default`).
public struct ConnectionEnd: Hashable, Sendable, CustomStringConvertible {
    /// The kind of end.
    public struct Reason: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The peer closed its side at a message boundary.
        public static let peerClosed = Reason("peerClosed")
        /// The peer closed its side in the middle of a message.
        public static let peerClosedMidMessage = Reason("peerClosedMidMessage")
        /// The connection ended after the ``ConnectionEnd/epitaph`` was sent (none to a
        /// legacy client): bad input, a limit, a timeout.
        public static let failed = Reason("failed")
        /// The daemon asked for the close (``ConnectionDriver/close(epitaph:now:)``).
        public static let closedByDaemon = Reason("closedByDaemon")
        /// A system call on the socket failed (``ConnectionEnd/error``).
        public static let transportError = Reason("transportError")
        /// The reason's name.
        public var description: String { name }
    }

    /// The kind of end.
    public let reason: Reason
    /// The epitaph sent before closing, if one was.
    public let epitaph: Epitaph?
    /// The failed system call, for ``Reason/transportError``.
    public let error: EndpointMuxError?
    /// Bytes of an unfinished message buffered when the peer closed.
    package let bufferedByteCount: Int

    private init(_ reason: Reason, epitaph: Epitaph? = nil, error: EndpointMuxError? = nil, buffered: Int = 0) {
        self.reason = reason
        self.epitaph = epitaph
        self.error = error
        self.bufferedByteCount = buffered
    }

    package static let peerClosed = ConnectionEnd(.peerClosed)
    package static func peerClosedMidMessage(bufferedByteCount: Int) -> ConnectionEnd {
        ConnectionEnd(.peerClosedMidMessage, buffered: bufferedByteCount)
    }
    package static func failed(_ epitaph: Epitaph?) -> ConnectionEnd { ConnectionEnd(.failed, epitaph: epitaph) }
    package static let closedByDaemon = ConnectionEnd(.closedByDaemon)
    package static func transportError(_ error: EndpointMuxError) -> ConnectionEnd {
        ConnectionEnd(.transportError, error: error)
    }

    /// What happened, for people.
    public var description: String {
        switch reason {
        case .peerClosedMidMessage:
            return "peer closed in the middle of a message (\(bufferedByteCount) bytes buffered)"
        case .failed: return epitaph.map { "failed: \($0)" } ?? "failed"
        case .closedByDaemon: return "closed by the daemon"
        case .transportError: return "transport error: \(error.map(String.init(describing:)) ?? "")"
        default: return "peer closed"
        }
    }
}

extension ConnectionEvent {
    /// Whether this is ``closed(_:)`` (read in place: no copy of the event's payload).
    package var isClosed: Bool {
        switch self {
        case .closed: true
        case .payload, .legacyTakeover, .legacyMessage, .control: false
        }
    }
}
