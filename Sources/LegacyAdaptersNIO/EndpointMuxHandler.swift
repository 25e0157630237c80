@_spi(Internals) public import EndpointMux
public import NIOCore

/// Puts an `EndpointMux` at the front of a daemon's existing SwiftNIO pipeline, so one
/// socket keeps the daemon's old protocol and also answers identity probes and carries v1
/// frames and JSON-RPC control messages.
///
/// Add it **first**, ahead of the daemon's handlers:
/// ```swift
/// try channel.pipeline.syncOperations.addHandlers([
///     EndpointMuxHandler(mux: mux, configuration: .init(legacyMode: .sticky)),
///     DaemonHandler(),
/// ])
/// ```
/// Every decision is made by the connection engine the POSIX `ConnectionDriver` also
/// runs (`ConnectionStateMachine`), so both adapters answer the same input with the same
/// bytes; the handler only does the I/O:
/// - **identity probe** → the answer is written and flushed; nothing goes on;
/// - **v1 frame** on a served lane → ``EndpointMuxMessage/frame(_:)``;
/// - **control message** (first non-whitespace byte `{`, when the mux accepts control
///   messages) → ``EndpointMuxMessage/control(_:)``. SwiftNIO cannot receive file
///   descriptors, so a message whose `fds` is above 0 ends the connection at once: a
///   -32050 error response for a request, then an `rpc.epitaph` notification
///   (`EpitaphStatus/timedOut`: its fds cannot arrive), then close. A well-framed
///   object that is not JSON-RPC 2.0 is answered with -32600 Invalid Request (`"id":
///   null` when it has no usable id), and the connection goes on;
/// - **legacy** bytes, by ``EndpointMuxConfiguration/legacyMode``:
///   - ``EndpointMuxLegacyMode/sticky``: fires ``EndpointMuxEvent/legacyTakeover``, forwards
///     every buffered byte untouched as `ByteBuffer`s, and removes itself; later bytes
///     reach the next handler directly, exactly as the peer sent them;
///   - ``EndpointMuxLegacyMode/perMessage(_:)``: the daemon's decoder delimits each message,
///     delivered as ``EndpointMuxMessage/legacy(_:)``; then the mux looks again;
///   - ``EndpointMuxLegacyMode/reject``: an epitaph, then close;
/// - **errors and timeouts** → the engine's epitaph (a v1 epitaph frame, an `rpc.epitaph`
///   for JSON-FD peers and JSON-looking input, none for legacy peers), the output side is
///   shut down so the peer reads the epitaph and then EOF, later bytes are discarded, and
///   the channel is closed when the peer closes or after
///   ``EndpointMuxConfiguration/drainTimeout``; then ``EndpointMuxEvent/failed(_:)``.
/// - **end of input** → complete messages are answered first, a message cut short gets
///   the engine's epitaph (an `rpc.epitaph` for JSON), then the channel is closed once
///   everything written has left. The handler turns on `allowRemoteHalfClosure` to see
///   the peer's half-close (and restores the previous value on a sticky takeover).
///
/// **Bounded memory.** Outbound, the handler counts every byte written through it (its
/// own answers and the next handlers' `ByteBuffer`/`FileRegion` writes) until the write
/// completes. Past ``EndpointMuxConfiguration/maxQueuedOutputByteCount`` the engine stops
/// deciding input and the handler stops calling `read()` on the channel (it holds the
/// pipeline's read and re-issues it when the peer catches up), so a peer that sends
/// without reading cannot grow the daemon's memory.
///
/// Later handlers write `ByteBuffer`s as usual
/// (`NIOCore/ByteBuffer/writeV1Frame(_:maxBodyByteCount:)` and
/// `NIOCore/ByteBuffer/writeControlMessage(_:)` encode replies). One handler serves one
/// channel.
public final class EndpointMuxHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// Bytes from the socket.
    public typealias InboundIn = ByteBuffer
    /// Messages for the next handler (raw `ByteBuffer`s after a sticky legacy takeover).
    public typealias InboundOut = EndpointMuxMessage
    /// What later handlers write (passed on unchanged, counted until written).
    public typealias OutboundIn = IOData
    /// What the handler writes (passed on unchanged).
    public typealias OutboundOut = IOData

    private let engine: EndpointMuxEngine

    /// Creates the handler for one channel.
    /// - Parameters:
    ///   - mux: the daemon's mux (identity, served lanes, legacy detector, frame and
    ///     control limits, whether control messages are accepted).
    ///   - configuration: legacy mode, timeouts, epitaph lane and output cap.
    public init(mux: EndpointMux, configuration: EndpointMuxConfiguration = EndpointMuxConfiguration()) {
        self.engine = EndpointMuxEngine(mux: mux, configuration: configuration, host: .handler)
    }

    /// Starts the connection's timers.
    public func handlerAdded(context: ChannelHandlerContext) {
        engine.added(context: context)
    }

    /// Stops the connection's timers.
    public func handlerRemoved(context: ChannelHandlerContext) {
        engine.removed()
    }

    /// Hands `data` to the connection engine (as much as it wants now) and carries out
    /// what it decides.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch engine.phase {
        case .active: engine.read(unwrapInboundIn(data), context: context)
        case .takenOver: context.fireChannelRead(data)  // a re-entrant read during the takeover
        case .closed: break  // the connection is over
        }
    }

    /// On a half-closed input, the engine decides what is left with the end of input
    /// known; the event is passed on.
    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            engine.inputClosed(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Ends the engine's connection (nothing more can be written) and passes the event on.
    public func channelInactive(context: ChannelHandlerContext) {
        engine.inactive(context: context)
        context.fireChannelInactive()
    }

    /// Passes the write on, counting its bytes against the output cap until written.
    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let byteCount: Int
        switch unwrapOutboundIn(data) {
        case let .byteBuffer(buffer): byteCount = buffer.readableBytes
        case let .fileRegion(region): byteCount = region.readableBytes
        }
        let tracked = engine.daemonWrote(byteCount, promise: promise, context: context)
        context.write(data, promise: tracked)
    }

    /// Passes the read on while the engine wants input; holds it otherwise.
    public func read(context: ChannelHandlerContext) {
        engine.readRequested(context: context)
    }
}

@available(*, unavailable)
extension EndpointMuxHandler: Sendable {}
