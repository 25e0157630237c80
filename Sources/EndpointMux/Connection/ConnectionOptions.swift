/// How a connection treats bytes the mux classifies as the daemon's own protocol.
public enum LegacyMode: Sendable {
    /// The first verdict decides the connection: on a legacy verdict the bytes buffered so
    /// far go to the daemon untouched (a legacy takeover) and the connection engine steps
    /// aside; the daemon reads the socket itself from then on.
    case sticky
    /// The daemon's decoder reports how long each legacy message is; the engine hands it
    /// over, drops it, and lets the mux look again, so legacy and new traffic can
    /// interleave on one connection.
    case perMessage(@Sendable (UnsafeRawBufferPointer) -> LegacyMessageLength)
    /// The daemon has no legacy protocol: a legacy verdict ends the connection with an
    /// epitaph (``EpitaphStatus/invalidFrame``; an `rpc.epitaph` when the input looks like
    /// JSON).
    case reject
}

/// What a daemon's legacy decoder says about the front of the buffer.
public enum LegacyMessageLength: Hashable, Sendable {
    /// The buffer ends inside a legacy message.
    case needMoreBytes
    /// The first `n` bytes are one legacy message.
    case complete(Int)
    /// The bytes are not valid legacy input; the connection ends without an epitaph
    /// (old clients would not understand one).
    case invalid(reason: String)
}

/// Per-connection behaviour of the connection engine (`ConnectionStateMachine` and every
/// adapter built on it).
///
/// The defaults are safe for a daemon on an untrusted socket: a peer cannot keep a
/// connection alive by holding an incomplete message (``partialMessageTimeout``, 30 s) or
/// a message whose fds never come (``fileDescriptorTimeout``, 10 s), and it cannot grow
/// the daemon's memory by sending without reading (``maxQueuedOutputByteCount``).
public struct ConnectionOptions: Sendable {
    /// Legacy handling; ``LegacyMode/reject`` by default.
    public var legacyMode: LegacyMode
    /// Close (with a ``EpitaphStatus/timedOut`` epitaph) a connection that holds no
    /// partial message and has been silent this long; `nil` (the default) = never.
    public var idleTimeout: Duration?
    /// Close (``EpitaphStatus/timedOut``) a connection whose buffered bytes have been an
    /// incomplete message this long, whatever those bytes are (whitespace, half a
    /// header, half a JSON object, an unfinished legacy line). 30 s by default; `nil` =
    /// never.
    public var partialMessageTimeout: Duration?
    /// Close (``EpitaphStatus/timedOut``, as an `rpc.epitaph` after a -32050 answer) a
    /// connection whose complete control message has waited this long for the fds it
    /// declared. 10 s by default (fds travel with the message's own bytes, so an honest
    /// peer never makes it wait), or ``partialMessageTimeout`` when that is shorter: a
    /// message waiting for its fds is incomplete too. `nil` = only the partial timeout.
    public var fileDescriptorTimeout: Duration?
    /// Lane of v1 epitaph frames (private use; `0xFFFF` by default).
    public var epitaphLane: PayloadProtocol
    /// After the epitaph and `shutdown(SHUT_WR)`, how long to drain the peer's bytes
    /// before closing, so it reads a clean EOF rather than `ECONNRESET`.
    public var drainTimeout: Duration
    /// Largest legacy message (per-message mode) buffered before the connection fails.
    public var maxLegacyMessageByteCount: Int
    /// Bytes asked of each read (at least 4 KiB). A frame whose header announces a larger
    /// body is read into a buffer sized for it.
    package var receiveChunkByteCount: Int
    /// While more than this many bytes of answers wait to be written (a peer that sends
    /// but does not read), the engine stops *deciding* input as well as reading it, so
    /// memory stays bounded by the caps whatever the peer sends.
    public var maxQueuedOutputByteCount: Int
    /// Events a daemon may be working on at once, per connection, when it handles them
    /// off the connection's loop (async handlers, a worker pool); past it the engine stops
    /// deciding input until work finishes. 256 by default.
    public var maxOutstandingWork: Int
    /// Events delivered per adapter call at most (64 by default): then deciding pauses
    /// until the next call, by which time the daemon's answers to them are queued and
    /// count against ``maxQueuedOutputByteCount``. Bounds memory when a peer pipelines
    /// requests with large answers and never reads.
    package var maxEventsPerTurn: Int
    /// Whether the transport can carry fds (`SCM_RIGHTS`); `false` for SwiftNIO, which
    /// reads with `read(2)`. Then a control message that declares fds ends the connection
    /// at once with ``EpitaphStatus/notSupported`` (a -32050 answer to a request, then an
    /// `rpc.epitaph`) instead of waiting for fds that can never arrive.
    package var transportCarriesFileDescriptors: Bool
    /// After a sticky takeover, keep reading and deliver every chunk as a legacy message
    /// (for adapters that own the socket, where the daemon cannot read it itself).
    package var streamsAfterTakeover = false

    /// Creates options; see each property for its default.
    public init(
        legacyMode: LegacyMode = .reject,
        idleTimeout: Duration? = nil,
        partialMessageTimeout: Duration? = .seconds(30),
        fileDescriptorTimeout: Duration? = .seconds(10),
        epitaphLane: PayloadProtocol = .defaultEpitaph,
        drainTimeout: Duration = .milliseconds(200),
        maxLegacyMessageByteCount: Int = 16 * 1024 * 1024,
        receiveChunkByteCount: Int = 16 * 1024,
        maxQueuedOutputByteCount: Int = 1024 * 1024,
        maxOutstandingWork: Int = 256,
        maxEventsPerTurn: Int = 64,
        transportCarriesFileDescriptors: Bool = true
    ) {
        self.legacyMode = legacyMode
        self.idleTimeout = idleTimeout
        self.partialMessageTimeout = partialMessageTimeout
        self.fileDescriptorTimeout = fileDescriptorTimeout
        self.epitaphLane = epitaphLane
        self.drainTimeout = drainTimeout
        self.maxLegacyMessageByteCount = maxLegacyMessageByteCount
        self.receiveChunkByteCount = max(4096, receiveChunkByteCount)
        self.maxQueuedOutputByteCount = max(0, maxQueuedOutputByteCount)
        self.maxOutstandingWork = max(1, maxOutstandingWork)
        self.maxEventsPerTurn = max(1, maxEventsPerTurn)
        self.transportCarriesFileDescriptors = transportCarriesFileDescriptors
    }
}
