@_spi(Internals) import EndpointMux
import EndpointMuxObservation
import NIOCore

/// Executes one connection's ``ConnectionStateMachine`` on a SwiftNIO channel, for
/// ``EndpointMuxHandler`` and ``EndpointMuxDecoder``. It decides nothing: bytes read go
/// in, the machine's actions come out as NIO operations, and its interest drives reads
/// (held while it does not want input) and one scheduled task (its next deadline).
///
/// Time is the event loop's (`EventLoop.now`), so an `EmbeddedEventLoop` drives every
/// timer synthetically. Each call into the engine is a new instant (at least 1 ns after
/// the last), so the machine sees every adapter call as a turn of its own.
///
/// Confined to the channel's event loop.
final class EndpointMuxEngine {
    enum Host { case handler, decoder }
    enum Phase { case active, takenOver, closed }

    private(set) var phase = Phase.active
    private var machine: ConnectionStateMachine
    private let log: LegacyDecodeLog
    private let host: Host
    private var context: ChannelHandlerContext?
    /// The machine's instants: `base` is the loop's `baseUptime`.
    private let base: ContinuousClock.Instant
    private var baseUptime: UInt64?
    private var last: ContinuousClock.Instant
    /// Bytes written to the channel (the machine's and, through the handler, the
    /// daemon's) whose write has not completed yet.
    private var inFlight = 0
    private var timer: Scheduled<Void>?
    private var timerDeadline: ContinuousClock.Instant?
    private var running = false
    private var unflushed = false
    /// Handler: bytes NIO read that the machine does not want yet (at most one read).
    private var pendingInput: ByteBuffer?
    /// Handler: the peer's EOF, passed on once `pendingInput` is in.
    private var pendingEndOfInput = false
    /// Handler: a `read()` held while the machine does not want input.
    private var heldRead = false
    private var previousHalfClosure: Bool?
    /// Counts and logs the connection (metrics always; logs with the configuration's logger).
    private var observer: ConnectionObserver?

    init(mux: EndpointMux, configuration: EndpointMuxConfiguration, host: Host) {
        var mux = mux
        if let accepts = configuration.acceptsControlMessages { mux.acceptsControlMessages = accepts }
        let log = LegacyDecodeLog()
        let now = ContinuousClock.now
        self.log = log
        self.host = host
        self.base = now
        self.last = now
        self.machine = ConnectionStateMachine(mux: mux, options: configuration.connectionOptions(log: log), now: now)
        self.observer = ConnectionObserver(
            telemetry: MuxTelemetry(logger: configuration.logger, metrics: configuration.metrics),
            connection: "channel")
    }

    // MARK: - Time

    private func now(_ context: ChannelHandlerContext) -> ContinuousClock.Instant {
        let uptime = context.eventLoop.now.uptimeNanoseconds
        let start = baseUptime ?? uptime
        baseUptime = start
        let elapsed = uptime >= start ? Int64(clamping: uptime - start) : 0
        let instant = max(base + .nanoseconds(elapsed), last + .nanoseconds(1))
        last = instant
        return instant
    }

    private func loopDeadline(_ instant: ContinuousClock.Instant) -> NIODeadline {
        let elapsed = base.duration(to: instant).components
        let nanoseconds = elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000
        return .uptimeNanoseconds((baseUptime ?? 0) &+ UInt64(clamping: max(0, nanoseconds)))
    }

    // MARK: - Inputs

    /// The handler or decoder joined a pipeline.
    func added(context: ChannelHandlerContext) {
        self.context = context
        _ = now(context)
        if host == .handler, let options = context.channel.syncOptions {
            // The engine decides what end of input means (answers first, then EOF or an
            // epitaph), so it needs to see the peer's half-close rather than a close.
            previousHalfClosure = try? options.getOption(ChannelOptions.allowRemoteHalfClosure)
            try? options.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        }
        run(context)
    }

    /// The handler or decoder left the pipeline.
    func removed() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        context = nil
        if phase == .active { phase = .closed }
        observer?.released()
    }

    /// Handler: bytes read from the socket; the machine takes them while it wants input.
    func read(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        guard phase == .active else { return }
        if var pending = pendingInput {
            pendingInput = nil  // keep the storage uniquely referenced while appending
            var incoming = buffer
            pending.writeBuffer(&incoming)
            pendingInput = pending
        } else {
            pendingInput = buffer
        }
        run(context)
    }

    /// Handler: the peer half-closed.
    func inputClosed(context: ChannelHandlerContext) {
        guard phase == .active else { return }
        pendingEndOfInput = true
        run(context)
    }

    /// The channel went inactive: whatever the machine was doing, input has ended.
    func inactive(context: ChannelHandlerContext) {
        guard phase == .active else { return }
        pendingInput = nil
        pendingEndOfInput = false
        machine.receiveEndOfInput(now: now(context))
        run(context)
    }

    /// Decoder: every readable byte goes to the machine (a decoder cannot hold reads);
    /// after a sticky takeover, bytes go on as legacy chunks.
    func decode(_ buffer: inout ByteBuffer, context: ChannelHandlerContext, endOfInput: Bool) {
        switch phase {
        case .takenOver:
            if buffer.readableBytes > 0, let chunk = buffer.readSlice(length: buffer.readableBytes) {
                context.fireChannelRead(NIOAny(EndpointMuxMessage.legacy(chunk)))
            }
            return
        case .closed:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return
        case .active:
            break
        }
        while phase == .active, buffer.readableBytes > 0 {
            let chunk = min(buffer.readableBytes, Self.chunkByteCount)
            let instant = now(context)
            buffer.withUnsafeReadableBytes { raw in
                machine.receive(copying: UnsafeRawBufferPointer(rebasing: raw[..<chunk]), now: instant)
            }
            buffer.moveReaderIndex(forwardBy: chunk)
            run(context)
        }
        if phase != .takenOver { buffer.moveReaderIndex(to: buffer.writerIndex) }
        if endOfInput, phase == .active {
            machine.receiveEndOfInput(now: now(context))
            run(context)
        }
    }

    /// Handler: the next handler wrote `byteCount` bytes; they count against the
    /// machine's output cap until written. Returns the promise to pass on.
    func daemonWrote(
        _ byteCount: Int, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext
    )
        -> EventLoopPromise<Void>?
    {
        guard phase == .active, byteCount > 0 else { return promise }
        let tracked = track(byteCount, context: context)
        if let promise { tracked.futureResult.cascade(to: promise) }
        machine.outputWritten(remaining: inFlight, now: now(context))
        run(context)
        return tracked
    }

    /// Handler: a `read()` from the pipeline, passed on only while the machine wants input.
    func readRequested(context: ChannelHandlerContext) {
        if phase == .active, !machine.interest.read || pendingInput != nil {
            heldRead = true
        } else {
            context.read()
        }
    }

    // MARK: - Execution

    static let chunkByteCount = 16 * 1024

    /// Carries out the machine's actions, due timers and held input until nothing is
    /// left, flushes once per batch, then re-arms the timer and the held read.
    private func run(_ context: ChannelHandlerContext) {
        guard !running else { return }  // the running loop picks up whatever changed
        running = true
        defer { running = false }
        var ticks = 0
        while true {
            drainActions(context)
            if unflushed {
                unflushed = false
                context.flush()  // may complete writes at once (and queue more actions)
                continue
            }
            guard phase == .active else { break }
            if let deadline = machine.interest.deadline, deadline <= last, ticks < 64 {
                // A deferred end (the answers to this turn's events are queued) or a due
                // timer: run it now, in a later turn.
                ticks += 1
                machine.tick(now: now(context))
                continue
            }
            if machine.interest.read, var pending = pendingInput {
                pendingInput = nil
                let chunk = min(pending.readableBytes, Self.chunkByteCount)
                let instant = now(context)
                pending.withUnsafeReadableBytes { raw in
                    machine.receive(copying: UnsafeRawBufferPointer(rebasing: raw[..<chunk]), now: instant)
                }
                pending.moveReaderIndex(forwardBy: chunk)
                if pending.readableBytes > 0 { pendingInput = pending }
                continue
            }
            if pendingEndOfInput, pendingInput == nil {
                pendingEndOfInput = false
                machine.receiveEndOfInput(now: now(context))
                continue
            }
            break
        }
        rearm(context)
    }

    private func rearm(_ context: ChannelHandlerContext) {
        let deadline = phase == .active ? machine.interest.deadline : nil
        if deadline != timerDeadline {
            timer?.cancel()
            timer = nil
            timerDeadline = deadline
            if let deadline {
                timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: loopDeadline(deadline)) {
                    [self] in self.timerFired()
                }
            }
        }
        if heldRead, phase == .active, machine.interest.read, pendingInput == nil {
            heldRead = false
            context.read()
        }
    }

    private func timerFired() {
        timer = nil
        timerDeadline = nil
        guard phase == .active, let context else { return }
        machine.tick(now: now(context))
        run(context)
    }

    private func drainActions(_ context: ChannelHandlerContext) {
        while let action = machine.nextAction() {
            observer?.observe(action)
            switch action {
            case let .deliver(event):
                deliver(event, context: context)
            case let .write(bytes, _):
                // SwiftNIO sends no fds; the machine only attaches them to the daemon's
                // sends, which go around it here.
                guard phase == .active, !bytes.isEmpty else { continue }
                let promise = track(bytes.count, context: context)
                context.write(NIOAny(context.channel.allocator.buffer(bytes: bytes)), promise: promise)
                unflushed = true
            case .closeReceivedFileDescriptors:
                break  // SwiftNIO receives none
            case .shutdownOutput:
                if unflushed {
                    unflushed = false
                    context.flush()
                }
                let shutdown = context.eventLoop.makePromise(of: Void.self)
                shutdown.futureResult.assumeIsolated().whenFailure { [self] _ in
                    // No half-closure on this channel: there is nothing to drain.
                    guard phase == .active, let context = self.context else { return }
                    machine.receiveEndOfInput(now: now(context))
                    run(context)
                }
                context.close(mode: .output, promise: shutdown)
            }
        }
        if var observer {
            observer.flush(machine.takeObservations())
            self.observer = observer
        }
    }

    private func track(_ byteCount: Int, context: ChannelHandlerContext) -> EventLoopPromise<Void> {
        inFlight += byteCount
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [self] _ in
            inFlight -= byteCount
            guard phase == .active, let context = self.context else { return }
            machine.outputWritten(remaining: inFlight, now: now(context))
            run(context)
        }
        return promise
    }

    private func deliver(_ event: ConnectionStateMachine.Event, context: ChannelHandlerContext) {
        switch event {
        case let .payload(frame):
            context.fireChannelRead(NIOAny(EndpointMuxMessage.frame(frame)))
        case let .control(message, _):
            context.fireChannelRead(NIOAny(EndpointMuxMessage.control(message)))
        case let .legacyMessage(bytes):
            let message = log.next() ?? context.channel.allocator.buffer(bytes: bytes)
            context.fireChannelRead(NIOAny(EndpointMuxMessage.legacy(message)))
        case let .legacyTakeover(bytes):
            takeOver(bytes, context: context)
        case let .closed(end):
            phase = .closed
            pendingInput = nil
            timer?.cancel()
            timer = nil
            timerDeadline = nil
            if case let .failed(epitaph) = end {
                let failure = epitaph.map(EndpointMuxFailure.epitaph) ?? log.failure ?? .withoutEpitaph
                context.fireUserInboundEventTriggered(EndpointMuxEvent.failed(failure))
            }
            context.close(promise: nil)
        }
    }

    private func takeOver(_ bytes: [UInt8], context: ChannelHandlerContext) {
        phase = .takenOver
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        let rest = pendingInput
        pendingInput = nil
        // Answers queued before the takeover (a probe's) leave before the daemon takes over.
        context.flush()
        context.fireUserInboundEventTriggered(EndpointMuxEvent.legacyTakeover)
        switch host {
        case .decoder:
            if !bytes.isEmpty {
                context.fireChannelRead(
                    NIOAny(EndpointMuxMessage.legacy(context.channel.allocator.buffer(bytes: bytes))))
            }
        case .handler:
            if let previousHalfClosure, let options = context.channel.syncOptions {
                try? options.setOption(ChannelOptions.allowRemoteHalfClosure, value: previousHalfClosure)
            }
            if !bytes.isEmpty { context.fireChannelRead(NIOAny(context.channel.allocator.buffer(bytes: bytes))) }
            if let rest, rest.readableBytes > 0 { context.fireChannelRead(NIOAny(rest)) }
            pendingEndOfInput = false  // the handler passed the event on already
            if heldRead {
                heldRead = false
                context.read()
            }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}
