public import EndpointMux
public import NIOCore

/// How ``EndpointMuxHandler`` and ``EndpointMuxDecoder`` treat bytes that belong to the
/// daemon's own (legacy) protocol, as decided by the mux's ``LegacyDetector`` or by a
/// first byte other than `0x01`.
///
/// These are the modes of the POSIX `ConnectionDriver` (`LegacyMode` in
/// `LegacyAdapters`), in NIO terms.
public enum EndpointMuxLegacyMode: Sendable {
    /// The daemon has no legacy protocol: a legacy verdict ends the connection with a v1
    /// epitaph (``EpitaphStatus/invalidFrame``).
    case reject
    /// The first legacy verdict decides the connection. ``EndpointMuxHandler`` fires
    /// ``EndpointMuxEvent/legacyTakeover``, forwards every buffered byte untouched as a
    /// `ByteBuffer`, and removes itself, so every later byte reaches the next handler
    /// directly. (``EndpointMuxDecoder``, which cannot leave the pipeline, forwards every
    /// later byte as ``EndpointMuxMessage/legacy(_:)`` chunks as they arrive instead.)
    case sticky
    /// The daemon's legacy decoder delimits each legacy message; the mux delivers it as
    /// ``EndpointMuxMessage/legacy(_:)`` and looks again, so legacy messages, frames and
    /// control messages can interleave on one connection.
    case perMessage(EndpointMuxLegacyDecoder)
}

/// The daemon's legacy message decoder, in the shape of `ByteToMessageDecoder.decode`:
/// read one message from the front of the buffer and return it, or return `nil` when the
/// buffer ends inside a message.
///
/// The closure gets a copy of the unconsumed bytes (a `ByteBuffer` is copy-on-write, so
/// this costs nothing). The mux drops as many bytes as the closure moved the reader index
/// forward, which must be at least one when it returns a message; whatever it did to the
/// copy before returning `nil` is forgotten. Throwing, or returning a message without
/// consuming anything, ends the connection without an epitaph (a legacy peer would not
/// understand one). While it returns `nil`, at most
/// ``EndpointMuxConfiguration/maxLegacyMessageByteCount`` bytes are buffered.
///
/// For example, a newline-delimited protocol:
/// ```swift
/// let lines = EndpointMuxLegacyDecoder { buffer in
///     guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
///     return buffer.readSlice(length: newline - buffer.readerIndex + 1)
/// }
/// ```
public struct EndpointMuxLegacyDecoder: Sendable {
    let decode: @Sendable (inout ByteBuffer) throws -> ByteBuffer?

    /// Wraps a decoding closure; see the type's documentation for the rules.
    public init(_ decode: @escaping @Sendable (inout ByteBuffer) throws -> ByteBuffer?) {
        self.decode = decode
    }
}

/// Per-connection behaviour of ``EndpointMuxHandler`` and ``EndpointMuxDecoder``; the
/// frame limits live in the mux (``MuxLimits``).
public struct EndpointMuxConfiguration: Sendable {
    /// Legacy handling; ``EndpointMuxLegacyMode/reject`` by default.
    public var legacyMode: EndpointMuxLegacyMode
    /// Whether a message whose first non-whitespace byte is `{` is a JSON-RPC control
    /// message (jsonrpc-fdpass framing). On by default. The legacy detector still runs
    /// first and wins; with this off, `{` is an ordinary legacy first byte.
    public var acceptsControlMessages: Bool
    /// Limits of the control-message receiver.
    public var controlLimits: ControlLimits
    /// Lane of v1 epitaph frames (private use; `0xFFFF` by default).
    public var epitaphLane: PayloadProtocol
    /// Per-message legacy mode: the most bytes buffered while the legacy decoder asks for
    /// more; beyond it the connection ends (without an epitaph).
    public var maxLegacyMessageByteCount: Int
    /// After the epitaph, the output side is shut down at once; the connection is then
    /// closed when the peer closes its side or after this long, whichever comes first,
    /// so the peer reads a clean EOF rather than a reset.
    public var drainTimeout: TimeAmount

    /// Creates a configuration; the defaults match the POSIX adapter's.
    public init(
        legacyMode: EndpointMuxLegacyMode = .reject,
        acceptsControlMessages: Bool = true,
        controlLimits: ControlLimits = ControlLimits(),
        epitaphLane: PayloadProtocol = .defaultEpitaph,
        maxLegacyMessageByteCount: Int = 16 * 1024 * 1024,
        drainTimeout: TimeAmount = .milliseconds(200)
    ) {
        self.legacyMode = legacyMode
        self.acceptsControlMessages = acceptsControlMessages
        self.controlLimits = controlLimits
        self.epitaphLane = epitaphLane
        self.maxLegacyMessageByteCount = max(0, maxLegacyMessageByteCount)
        self.drainTimeout = drainTimeout
    }
}
