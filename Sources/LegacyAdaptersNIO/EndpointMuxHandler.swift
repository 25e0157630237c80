public import EndpointMux
public import NIOCore

/// Puts an ``EndpointMux`` at the front of a daemon's existing SwiftNIO pipeline, so one
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
/// It accumulates the bytes it reads and lets the mux decide, one message at a time:
/// - **identity probe** → writes and flushes the answer itself; nothing goes on;
/// - **v1 frame** on a served lane → ``EndpointMuxMessage/frame(_:)``;
/// - **control message** (first non-whitespace byte `{`, when
///   ``EndpointMuxConfiguration/acceptsControlMessages``) → ``EndpointMuxMessage/control(_:)``.
///   SwiftNIO cannot receive file descriptors, so a message whose `fds` is above 0 ends the
///   connection: a -32050 error response for a request, then an `rpc.epitaph`
///   notification, then close. A well-framed object that is not JSON-RPC 2.0 is answered
///   with -32600 Invalid Request, and the connection goes on;
/// - **legacy** bytes, by ``EndpointMuxConfiguration/legacyMode``:
///   - ``EndpointMuxLegacyMode/sticky``: fires ``EndpointMuxEvent/legacyTakeover``, forwards
///     every buffered byte untouched as one `ByteBuffer`, and removes itself; later bytes
///     reach the next handler directly, exactly as the peer sent them;
///   - ``EndpointMuxLegacyMode/perMessage(_:)``: the daemon's decoder delimits each message,
///     delivered as ``EndpointMuxMessage/legacy(_:)``; then the mux looks again;
///   - ``EndpointMuxLegacyMode/reject``: a v1 epitaph, then close;
/// - **errors** (``MuxError``, fatal ``ControlError``, legacy limits) → the epitaph in the
///   framing of the failed message (v1 epitaph frame, or `rpc.epitaph`), then the output
///   side is shut down so the peer reads the epitaph and then EOF, then
///   ``EndpointMuxEvent/failed(_:)``; every later byte is discarded and the channel is
///   closed when the peer closes or after ``EndpointMuxConfiguration/drainTimeout``.
///
/// The next handler therefore receives ``EndpointMuxMessage``s (and, in sticky mode after
/// the takeover, `ByteBuffer`s). Outbound, the handler is not involved: later handlers
/// write `ByteBuffer`s directly (``NIOCore/ByteBuffer/writeV1Frame(_:maxBodyByteCount:)``
/// and ``NIOCore/ByteBuffer/writeControlMessage(_:)`` encode replies).
///
/// Limits: frames are bounded by the mux's ``MuxLimits``, control messages by
/// ``EndpointMuxConfiguration/controlLimits``, and per-message legacy input by
/// ``EndpointMuxConfiguration/maxLegacyMessageByteCount``. One handler serves one channel.
public final class EndpointMuxHandler: ChannelInboundHandler, RemovableChannelHandler {
    /// Bytes from the socket.
    public typealias InboundIn = ByteBuffer
    /// Messages for the next handler (raw `ByteBuffer`s after a sticky legacy takeover).
    public typealias InboundOut = EndpointMuxMessage

    private enum State { case active, handingOver, failed, closed }

    private var core: EndpointMuxCore
    private var state = State.active
    private var cumulation: ByteBuffer?
    private var processing = false

    /// Creates the handler for one channel.
    /// - Parameters:
    ///   - mux: the daemon's mux (identity, served lanes, legacy detector, frame limits).
    ///   - configuration: legacy mode, control messages, epitaph lane and limits.
    public init(mux: EndpointMux, configuration: EndpointMuxConfiguration = EndpointMuxConfiguration()) {
        self.core = EndpointMuxCore(mux: mux, configuration: configuration)
    }

    /// Accumulates `data` and decides every complete message in it.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .active:
            break
        case .handingOver:
            context.fireChannelRead(data)  // a re-entrant read during the takeover
            return
        case .failed, .closed:
            return  // draining: the peer is told already
        }
        var incoming = unwrapInboundIn(data)
        if var buffered = cumulation, buffered.readableBytes > 0 {
            cumulation = nil  // keep the storage uniquely referenced while appending
            buffered.writeBuffer(&incoming)
            cumulation = buffered
        } else {
            cumulation = incoming
        }
        process(context: context, endOfInput: false)
    }

    /// On a half-closed input, decides what is left with the end of input known (a
    /// control message cut short fails with an `rpc.epitaph`), then passes the event on.
    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .active = state, let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            process(context: context, endOfInput: true)
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Drops the buffered bytes and passes the event on.
    public func channelInactive(context: ChannelHandlerContext) {
        if case .active = state { state = .closed }
        cumulation = nil
        context.fireChannelInactive()
    }

    /// When the daemon removes the handler itself, the unconsumed bytes go on, untouched,
    /// as one `ByteBuffer`.
    public func handlerRemoved(context: ChannelHandlerContext) {
        if case .active = state, let rest = cumulation, rest.readableBytes > 0 {
            context.fireChannelRead(NIOAny(rest))
        }
        cumulation = nil
        state = .closed
    }

    // MARK: - The decision loop

    private func process(context: ChannelHandlerContext, endOfInput: Bool) {
        guard !processing else { return }  // a re-entrant read: the running loop takes it
        processing = true
        defer { processing = false }
        var wrote = false
        loop: while case .active = state, var buffer = cumulation {
            cumulation = nil  // keep the storage uniquely referenced while deciding
            let step = core.step(&buffer, endOfInput: endOfInput)
            cumulation = buffer
            switch step {
            case .needMoreBytes:
                break loop
            case let .deliver(message):
                context.fireChannelRead(wrapInboundOut(message))
            case let .reply(bytes):
                context.write(NIOAny(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
                wrote = true
            case .legacyTakeover:
                if wrote { context.flush() }
                wrote = false
                handOver(context: context)
            case let .fail(failure):
                if wrote { context.flush() }
                wrote = false
                fail(failure, context: context)
            }
        }
        if wrote { context.flush() }
        compactCumulation()
    }

    /// Frees consumed storage: all of it when empty, the consumed front when it is over
    /// half of the buffer.
    private func compactCumulation() {
        guard var buffer = cumulation else { return }
        cumulation = nil
        if buffer.readableBytes == 0 { return }
        if buffer.readerIndex > 1024, buffer.readerIndex > buffer.capacity / 2 { buffer.discardReadBytes() }
        cumulation = buffer
    }

    private func handOver(context: ChannelHandlerContext) {
        state = .handingOver
        let rest = cumulation
        cumulation = nil
        context.fireUserInboundEventTriggered(EndpointMuxEvent.legacyTakeover)
        if let rest, rest.readableBytes > 0 {
            context.fireChannelRead(NIOAny(rest))
        }
        guard case .handingOver = state else { return }  // the pipeline went away meanwhile
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func fail(_ failure: EndpointMuxFailure, context: ChannelHandlerContext) {
        state = .failed
        cumulation = nil
        EndpointMuxClosing.closeAfterEpitaph(
            core.wireBytes(for: failure), context: context, drainTimeout: core.configuration.drainTimeout)
        context.fireUserInboundEventTriggered(EndpointMuxEvent.failed(failure))
    }
}

@available(*, unavailable)
extension EndpointMuxHandler: Sendable {}
