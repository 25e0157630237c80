public import EndpointMux

/// How a connection driver treats bytes the mux classifies as the daemon's own protocol.
public enum LegacyMode: Sendable {
    /// The first verdict decides the connection: on a legacy verdict the driver hands the
    /// bytes it buffered to the daemon untouched (``ConnectionEvent/legacyTakeover(_:)``)
    /// and steps aside; the daemon reads the socket itself from then on.
    case sticky
    /// The daemon's decoder reports how long each legacy message is; the driver hands it
    /// over (``ConnectionEvent/legacyMessage(_:)``), drops it, and lets the mux look
    /// again, so legacy and new traffic can interleave on one connection.
    case perMessage(@Sendable (UnsafeRawBufferPointer) -> LegacyMessageLength)
    /// The daemon has no legacy protocol: a legacy verdict ends the connection with an
    /// epitaph (``EpitaphStatus/invalidFrame``).
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

/// Per-connection behaviour of a ``ConnectionDriver``.
public struct ConnectionOptions: Sendable {
    /// Legacy handling; ``LegacyMode/reject`` by default.
    public var legacyMode: LegacyMode
    /// Close (with a ``EpitaphStatus/timedOut`` epitaph) a connection that holds no
    /// partial message and has been silent this long; `nil` = never (the reference).
    public var idleTimeout: Duration?
    /// Close a connection whose buffered bytes have been an incomplete message this long;
    /// `nil` = never (the reference).
    public var partialMessageTimeout: Duration?
    /// Lane of v1 epitaph frames (private use; `0xFFFF` by default).
    public var epitaphLane: PayloadProtocol
    /// After the epitaph and `shutdown(SHUT_WR)`, how long to drain the peer's bytes
    /// before closing, so it reads a clean EOF rather than `ECONNRESET`.
    public var drainTimeout: Duration
    /// Largest legacy message (per-message mode) buffered before the connection fails.
    public var maxLegacyMessageByteCount: Int
    /// Bytes asked of each `recvmsg`.
    public var receiveChunkByteCount: Int
    /// While more than this many bytes of answers wait to be written (a peer that sends
    /// but does not read), the driver stops reading (``ConnectionDriver/wantsReadable`` is
    /// false), so queued output stays bounded.
    public var maxQueuedOutputByteCount: Int

    /// Creates options; the defaults keep the reference's behaviour except that bad input
    /// gets an epitaph.
    public init(
        legacyMode: LegacyMode = .reject,
        idleTimeout: Duration? = nil,
        partialMessageTimeout: Duration? = nil,
        epitaphLane: PayloadProtocol = .defaultEpitaph,
        drainTimeout: Duration = .milliseconds(200),
        maxLegacyMessageByteCount: Int = 16 * 1024 * 1024,
        receiveChunkByteCount: Int = 64 * 1024,
        maxQueuedOutputByteCount: Int = 4 * 1024 * 1024
    ) {
        self.legacyMode = legacyMode
        self.idleTimeout = idleTimeout
        self.partialMessageTimeout = partialMessageTimeout
        self.epitaphLane = epitaphLane
        self.drainTimeout = drainTimeout
        self.maxLegacyMessageByteCount = maxLegacyMessageByteCount
        self.receiveChunkByteCount = max(4096, receiveChunkByteCount)
        self.maxQueuedOutputByteCount = max(0, maxQueuedOutputByteCount)
    }
}
