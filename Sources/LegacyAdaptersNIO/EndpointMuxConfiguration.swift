@_spi(Internals) public import EndpointMux
import EndpointMuxObservation
public import Logging
public import NIOCore

/// How ``EndpointMuxHandler`` and ``EndpointMuxDecoder`` treat bytes that belong to the
/// daemon's own (legacy) protocol, as decided by the mux's `LegacyDetector` or by a
/// first byte other than `0x01`.
///
/// These are the connection engine's `LegacyMode`s (the POSIX `ConnectionDriver` uses
/// the same ones), in NIO terms.
public enum EndpointMuxLegacyMode: Sendable {
    /// The daemon has no legacy protocol: a legacy verdict ends the connection with an
    /// epitaph (`EpitaphStatus/invalidFrame`; an `rpc.epitaph` when the input looks like
    /// JSON).
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

/// The daemon's legacy message decoder: either in the shape of
/// `ByteToMessageDecoder.decode` (``init(_:)``) or the connection engine's length closure
/// (``init(length:)``, the same closure as the POSIX adapter's `LegacyMode/perMessage(_:)`).
///
/// **`ByteBuffer` form.** Read one message from the front of the buffer and return it, or
/// return `nil` when the buffer ends inside a message. The closure gets a copy of (a
/// prefix of) the unconsumed bytes; the mux drops as many bytes as the closure moved the
/// reader index forward, which must be at least one when it returns a message; whatever
/// it did to the copy before returning `nil` is forgotten. Like every NIO decoder it must
/// give the same messages however the input is split: it may be shown a prefix first
/// (4 KiB, then twice as much, up to everything buffered), so a long buffer of short
/// messages costs time linear in each message, not in the buffer. Throwing, or returning
/// a message without consuming anything, ends the connection without an epitaph (a
/// legacy peer would not understand one). While it returns `nil`, at most
/// ``EndpointMuxConfiguration/maxLegacyMessageByteCount`` bytes are buffered.
///
/// For example, a newline-delimited protocol:
/// ```swift
/// let lines = EndpointMuxLegacyDecoder { buffer in
///     guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
///     return buffer.readSlice(length: newline - buffer.readerIndex + 1)
/// }
/// // or, without copies, as the POSIX adapter takes it:
/// let sameLines = EndpointMuxLegacyDecoder(length: { bytes in
///     bytes.firstIndex(of: UInt8(ascii: "\n")).map { .complete($0 + 1) } ?? .needMoreBytes
/// })
/// ```
public struct EndpointMuxLegacyDecoder: Sendable {
    enum Form: Sendable {
        case buffer(@Sendable (inout ByteBuffer) throws -> ByteBuffer?)
        case length(@Sendable (UnsafeRawBufferPointer) -> LegacyMessageLength)
    }

    let form: Form

    /// Wraps a `ByteBuffer` decoding closure; see the type's documentation for the rules.
    public init(_ decode: @escaping @Sendable (inout ByteBuffer) throws -> ByteBuffer?) {
        self.form = .buffer(decode)
    }

    /// Wraps the connection engine's length closure (as `LegacyMode/perMessage(_:)`
    /// takes it): it reports how long the legacy message at the front of the bytes is.
    /// Each message is delivered as the exact bytes it covers.
    public init(length: @escaping @Sendable (UnsafeRawBufferPointer) -> LegacyMessageLength) {
        self.form = .length(length)
    }
}

/// Per-connection behaviour of ``EndpointMuxHandler`` and ``EndpointMuxDecoder``; the
/// frame and control limits live in the mux (`MuxLimits`), every other rule in the
/// connection engine the POSIX adapter also runs.
public struct EndpointMuxConfiguration: Sendable {
    /// Legacy handling; ``EndpointMuxLegacyMode/reject`` by default.
    public var legacyMode: EndpointMuxLegacyMode
    /// Overrides the mux's `EndpointMux/acceptsControlMessages` for this connection
    /// when set; `nil` (the default) keeps the mux's setting. The legacy detector runs
    /// first and wins either way; with control messages off, `{` is an ordinary legacy
    /// first byte.
    public var acceptsControlMessages: Bool?
    /// Lane of v1 epitaph frames (private use; `0xFFFF` by default).
    public var epitaphLane: PayloadProtocol
    /// Per-message legacy mode: the most bytes buffered while the legacy decoder asks for
    /// more; beyond it the connection ends (without an epitaph).
    public var maxLegacyMessageByteCount: Int
    /// After the epitaph, the output side is shut down at once; the connection is then
    /// closed when the peer closes its side or after this long, whichever comes first,
    /// so the peer reads a clean EOF rather than a reset.
    public var drainTimeout: TimeAmount
    /// Close (with a `EpitaphStatus/timedOut` epitaph) a connection that holds no
    /// partial message and has been silent this long; `nil` (the default) = never.
    public var idleTimeout: TimeAmount?
    /// Close (`EpitaphStatus/timedOut`) a connection whose buffered bytes have been an
    /// incomplete message this long. 30 s by default (the engine's); `nil` = never.
    public var partialMessageTimeout: TimeAmount?
    /// While more than this many bytes written to the peer (the mux's answers and the
    /// daemon's, through ``EndpointMuxHandler``) wait unwritten, the engine stops deciding
    /// input and the handler stops reading the socket. 1 MiB by default.
    public var maxQueuedOutputByteCount: Int
    /// Where connection ends (with their reason: the epitaph's status and reason, the
    /// peer's end of input, a timeout) and epitaphs are logged: `notice` for failures,
    /// `debug` otherwise. `nil` (the default): nothing is logged or built.
    package var logger: Logger?
    /// The swift-metrics objects, made once by ``init(legacyMode:acceptsControlMessages:epitaphLane:maxLegacyMessageByteCount:drainTimeout:idleTimeout:partialMessageTimeout:maxQueuedOutputByteCount:logger:metricsDimensions:)``
    /// and shared by every handler given this configuration (or a copy).
    let metrics: MuxMetrics

    /// Creates a configuration; the defaults match the POSIX adapter's.
    ///
    /// It also creates the connection metrics (the names are in docs/DESIGN.md), each with
    /// `metricsDimensions`, from the `MetricsSystem` backend bootstrapped by then (none:
    /// no-ops): create one configuration and share it between channels rather than one
    /// per channel.
    public init(
        legacyMode: EndpointMuxLegacyMode = .reject,
        acceptsControlMessages: Bool? = nil,
        epitaphLane: PayloadProtocol = .defaultEpitaph,
        maxLegacyMessageByteCount: Int = 16 * 1024 * 1024,
        drainTimeout: TimeAmount = .milliseconds(200),
        idleTimeout: TimeAmount? = nil,
        partialMessageTimeout: TimeAmount? = .seconds(30),
        maxQueuedOutputByteCount: Int = 1024 * 1024,
        logger: Logger? = nil,
        metricsDimensions: [(String, String)] = []
    ) {
        self.legacyMode = legacyMode
        self.acceptsControlMessages = acceptsControlMessages
        self.epitaphLane = epitaphLane
        self.maxLegacyMessageByteCount = max(0, maxLegacyMessageByteCount)
        self.drainTimeout = drainTimeout
        self.idleTimeout = idleTimeout
        self.partialMessageTimeout = partialMessageTimeout
        self.maxQueuedOutputByteCount = max(0, maxQueuedOutputByteCount)
        self.logger = logger
        self.metrics = MuxMetrics(dimensions: metricsDimensions)
    }

    /// The engine's options for one connection; `log` carries the `ByteBuffer` form's
    /// messages and failure reasons from the length closure to the adapter.
    func connectionOptions(log: LegacyDecodeLog) -> ConnectionOptions {
        let mode: LegacyMode
        switch legacyMode {
        case .reject: mode = .reject
        case .sticky: mode = .sticky
        case let .perMessage(decoder):
            switch decoder.form {
            case let .length(length): mode = .perMessage(length)
            case let .buffer(decode):
                let limit = maxLegacyMessageByteCount
                mode = .perMessage { raw in log.delimit(raw, decode: decode, limit: limit) }
            }
        }
        return ConnectionOptions(
            legacyMode: mode,
            idleTimeout: idleTimeout.map(Self.duration),
            partialMessageTimeout: partialMessageTimeout.map(Self.duration),
            epitaphLane: epitaphLane,
            drainTimeout: Self.duration(drainTimeout),
            maxLegacyMessageByteCount: maxLegacyMessageByteCount,
            maxQueuedOutputByteCount: maxQueuedOutputByteCount,
            // SwiftNIO cannot receive fds: a control message that declares some can never
            // be completed, so the engine ends it at once (-32050 answer, rpc.epitaph).
            transportCarriesFileDescriptors: false)
    }

    static func duration(_ amount: TimeAmount) -> Duration { .nanoseconds(max(0, amount.nanoseconds)) }
}

/// Bridges a `ByteBuffer` legacy decoder to the engine's length closure for one
/// connection: the messages the decoder returned wait here, in order, until the engine
/// delivers them; a failure's reason waits for the end it causes.
///
/// Only touched on the channel's event loop (the engine calls the closure from inside
/// the adapter's calls), hence `@unchecked Sendable`.
final class LegacyDecodeLog: @unchecked Sendable {
    private var messages: [ByteBuffer] = []
    private var head = 0
    /// Why the legacy decoder ended the connection, if it did.
    private(set) var failure: EndpointMuxFailure?

    /// The next message the decoder returned, in delivery order.
    func next() -> ByteBuffer? {
        guard head < messages.count else { return nil }
        let message = messages[head]
        head += 1
        if head == messages.count {
            messages.removeAll(keepingCapacity: messages.count <= 16)
            head = 0
        }
        return message
    }

    func delimit(
        _ raw: UnsafeRawBufferPointer, decode: (inout ByteBuffer) throws -> ByteBuffer?, limit: Int
    ) -> LegacyMessageLength {
        var window = min(raw.count, 4096)
        while true {
            var candidate = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: raw[..<window]))
            let message: ByteBuffer?
            do {
                message = try decode(&candidate)
            } catch {
                return invalid(.legacyDecoderFailed(reason: String(describing: error)))
            }
            if let message {
                let consumed = candidate.readerIndex
                guard consumed > 0, consumed <= window else {
                    return invalid(
                        .legacyDecoderFailed(
                            reason: "returned a message after consuming \(consumed) of \(window) bytes"))
                }
                messages.append(message)
                return .complete(consumed)
            }
            if window == raw.count {
                if raw.count > limit { failure = .legacyMessageTooLarge(limit: limit) }
                return .needMoreBytes
            }
            window = min(raw.count, window * 2)
        }
    }

    private func invalid(_ failure: EndpointMuxFailure) -> LegacyMessageLength {
        self.failure = failure
        return .invalid(reason: failure.description)
    }
}
