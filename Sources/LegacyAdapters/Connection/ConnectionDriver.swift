import CSocketShims
@_spi(Internals) public import EndpointMux
import EndpointMuxObservation
import Glibc

/// Serves one connection over a socket the daemon owns, inside the daemon's own poll loop.
///
/// The driver *borrows* the fd: it never closes it (after ``ConnectionEvent/closed(_:)``
/// the daemon does). Its whole contract is one loop:
///
/// ```swift
/// while !driver.isClosed {
///     var pfd = pollfd(fd: fd, events: driver.interest.pollEvents, revents: 0)
///     poll(&pfd, 1, driver.interest.pollTimeout(now: .now))
///     driver.handle(revents: pfd.revents) { event in /* answer with driver.send(…) */ }
/// }
/// close(fd)
/// ```
///
/// ``handle(revents:now:)`` writes what is queued, reads what arrived (never waiting, even
/// on a blocking fd), answers probes, runs the timers and carries out ends; ``interest``
/// always covers what is left to do, including flushing answers the daemon queued and an
/// end deferred so that those answers go first. A daemon that only polls on the interest
/// and makes the call cannot hang, leak or spin a connection.
/// Readiness must be level-triggered (`poll(2)`, or epoll without `EPOLLET`): a call reads
/// until the socket is empty or a bounded number of reads, not always until `EAGAIN`.
///
/// Every decision is the `ConnectionStateMachine`'s; the driver only does the I/O.
/// Answers sent inside ``handle(revents:now:answer:)`` leave before it returns; answers sent
/// later leave on the next call. Either way they are coalesced into as few `sendmsg` calls
/// as possible. A driver is used from one thread at a time.
public final class ConnectionDriver {
    /// The borrowed socket.
    package let fileDescriptor: Int32
    /// The mux deciding every message.
    package var mux: EndpointMux { machine.mux }
    /// Behaviour settings.
    package var options: ConnectionOptions { machine.options }

    // The driver's state is touched on one thread at a time and never re-entered: no call
    // into the daemon happens while one of these properties is being modified, and nested
    // accesses (the read closure inside `machine.receive`) touch other properties. So the
    // runtime's dynamic exclusivity checks, one pair per access and several per message on
    // the hot path, are turned off for them (measured: 4 % of the server's CPU per request).
    @exclusivity(unchecked) private var machine: ConnectionStateMachine
    /// The mux's frame cap, read once (not through the machine on every send).
    private let maxFrameBodyByteCount: Int
    @exclusivity(unchecked) private var receiver = SocketReceiver()
    @exclusivity(unchecked) private var received = FileDescriptorQueue()
    @exclusivity(unchecked) private var output = OutboundQueue()
    /// Fds of the send being executed.
    @exclusivity(unchecked) private var sending = FileDescriptorQueue()
    @exclusivity(unchecked) private var events: [ConnectionEvent] = []
    /// The machine's interest and end, read through one in-place access when asked for
    /// after a change (a getter across modules would copy the whole machine).
    @exclusivity(unchecked) private var current: (interest: ConnectionInterest, isClosed: Bool)
    @exclusivity(unchecked) private var statusIsStale = false
    private var status: (interest: ConnectionInterest, isClosed: Bool) {
        if statusIsStale {
            current = machine.status()
            statusIsStale = false
        }
        return current
    }
    /// The machine's actions being executed (storage reused between batches).
    private var batch: [ConnectionStateMachine.Action] = []
    private var transportError: EndpointMuxError?
    /// Counts and logs what this connection does (nil: no telemetry, nothing to pay).
    private var observer: ConnectionObserver?

    /// `recvmsg` calls per ``handle(revents:now:)`` at most (then poll again; level-triggered).
    /// Reading stops earlier at a short read: the socket had no more then.
    static let maxReadsPerCall = 16

    /// Creates a driver for a connected stream socket the daemon owns (blocking or not:
    /// the driver never waits on it).
    /// - Parameter fileDescriptor: the connected stream socket, borrowed: the daemon keeps
    ///   it and closes it after ``ConnectionEvent/closed(_:)``.
    /// - Parameter mux: the mux deciding every message (share one per daemon).
    /// - Parameter options: per-connection behaviour (timeouts, output cap, legacy mode).
    /// - Parameter now: the current instant (timers start here).
    /// - Parameter telemetry: where the connection is logged and counted (share one per
    ///   configuration); `nil`, the default, logs and counts nothing.
    public init(
        borrowing fileDescriptor: Int32, mux: EndpointMux, options: ConnectionOptions = ConnectionOptions(),
        now: ContinuousClock.Instant = .now, telemetry: ConnectionTelemetry? = nil
    ) {
        self.fileDescriptor = fileDescriptor
        var machine = ConnectionStateMachine(mux: mux, options: options, now: now)
        self.current = machine.status()
        self.machine = machine
        self.maxFrameBodyByteCount = mux.limits.maxFrameBodyByteCount
        if let telemetry {
            observer = ConnectionObserver(telemetry: telemetry.telemetry, connection: "fd \(fileDescriptor)")
        }
    }

    deinit { observer?.released() }

    /// What to wait for before the next ``handle(revents:now:)``: readability,
    /// writability, and the latest instant to call (`ConnectionInterest/pollEvents` and
    /// `ConnectionInterest/pollTimeout(now:)` give `poll(2)`'s arguments).
    public var interest: ConnectionInterest { status.interest }

    /// Whether the connection is over (``ConnectionEvent/closed(_:)`` was returned).
    public var isClosed: Bool { status.isClosed }

    /// The one call after every wake-up: writes queued output, reads what arrived when
    /// `revents` says readable (or hung up, or in error), runs the timers, and returns
    /// the events for the daemon, in order. Harmless to call at any time (`revents` 0
    /// only writes and runs timers).
    public func handle(revents: Int16 = 0, now: ContinuousClock.Instant = .now) -> [ConnectionEvent] {
        flush(now: now)
        if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { read(now: now) }
        if let deadline = status.interest.monotonicDeadline, deadline <= MonotonicInstant(now) {
            machine.tick(now: now)
            execute()
        }
        flush(now: now)
        defer { events = [] }
        return events
    }

    /// The one call, answering in place: as ``handle(revents:now:)``, then `answer` is
    /// called with each event in order, and what it sends is written before this returns
    /// (coalesced into as few `sendmsg` calls as the socket takes), so a wake-up that
    /// answers what it read costs no second wake-up to write the answers.
    public func handle(
        revents: Int16 = 0, now: ContinuousClock.Instant = .now,
        answer: (ConnectionEvent) -> Void
    ) {
        let delivered = handle(revents: revents, now: now)
        guard !delivered.isEmpty else { return }
        for event in delivered { answer(event) }
        flush(now: now)
    }

    // MARK: - The daemon's calls

    /// Queues a v1 frame (written by the next ``handle(revents:now:)``).
    /// - Throws: `EndpointMuxError` with code `EndpointMuxError/Code/limitExceeded` when
    ///   it exceeds `MuxLimits/maxFrameBodyByteCount`; nothing is queued then (the
    ///   connection stays usable).
    public func send(_ frame: Frame) throws(EndpointMuxError) {
        do throws(FramingError) { try queue(frame) } catch { throw .framing(error) }
    }

    /// Frames whose payload is at most this long (and whose trace fields are short) are
    /// encoded into the output queue directly (within ``OutboundQueue``'s small-message
    /// size: the header and fields add well under 256 bytes).
    private static let directFramePayloadByteCount = 512

    private func queue(_ frame: Frame) throws(FramingError) {
        let limit = maxFrameBodyByteCount
        if frame.payload.count <= Self.directFramePayloadByteCount, machine.mayQueueOutputDirectly() {
            // A small answer is encoded straight into the output queue's storage, joined to
            // the answers before it: no buffer of its own, no copy.
            let added = try output.enqueueAppending { (buffer) throws(FramingError) in
                try frame.encode(into: &buffer, maxBodyByteCount: limit)
            }
            machine.countWrittenDirectly(added)
            statusIsStale = true
            return
        }
        guard frame.payload.count >= Frame.separatePayloadByteCount else {
            write(try frame.encoded(maxBodyByteCount: limit))
            return
        }
        // A big payload is written from its own storage (its own iovec), not copied.
        let parts = try frame.encodedParts(maxBodyByteCount: limit)
        write(parts.head)
        write(parts.payload)
        if !parts.tail.isEmpty { write(parts.tail) }
    }

    /// Queues a control message (a response or notification) with `fileDescriptors`,
    /// which are sent with it by `SCM_RIGHTS` (batched as jsonrpc-fdpass requires) and
    /// closed here once sent; `fds` is set to their count. After the connection ended
    /// the fds are closed.
    public func send(_ message: ControlMessage, fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue())
    {
        let count = fileDescriptors.count
        sending = fileDescriptors
        _ = machine.send(message, fileDescriptorCount: count)
        execute()
        sending.closeAll()
    }

    /// Queues a control message with the fds it carries.
    public func send(_ message: OutgoingControlMessage) {
        send(message.message, fileDescriptors: message.takeFileDescriptors())
    }

    /// Queues raw bytes (e.g. a legacy reply).
    public func send(bytes: [UInt8]) {
        write(bytes)
    }

    /// The daemon's fd-less output: admitted (counted) by the machine, queued at once.
    private func write(_ bytes: [UInt8]) {
        if let admitted = machine.admit(bytes) {
            output.enqueue(admitted)
            statusIsStale = true
        } else {
            execute()
        }
    }

    /// Ends the connection from the daemon's side: `epitaph` (v1 framing, an `rpc.epitaph`
    /// for JSON-FD peers, none for legacy peers), shutdown, drain; ``ConnectionEvent/closed(_:)``
    /// comes from a later ``handle(revents:now:)``, as ``interest`` asks.
    public func close(
        epitaph: Epitaph = Epitaph(status: .ok, reason: "closed by the server"),
        now: ContinuousClock.Instant = .now
    ) {
        machine.close(epitaph: epitaph, now: now)
        execute()
        flush(now: now)
    }

    // MARK: - Work off the loop (adapters in this module)

    /// The daemon took an event to work on elsewhere: ends wait for ``workFinished(now:)``.
    func workStarted() {
        machine.workStarted()
        execute()
    }

    /// Work started with ``workStarted()`` is done (its answer was sent first).
    func workFinished(now: ContinuousClock.Instant) {
        machine.workFinished(now: now)
        execute()
    }

    // MARK: - Compatibility for the loops of tests

    /// ``handle(revents:now:)`` after a readable wake-up.
    func readable(now: ContinuousClock.Instant = .now) -> [ConnectionEvent] { handle(revents: Int16(POLLIN), now: now) }
    /// ``handle(revents:now:)`` after a writable wake-up.
    func writable(now: ContinuousClock.Instant = .now) -> [ConnectionEvent] {
        handle(revents: Int16(POLLOUT), now: now)
    }
    /// ``handle(revents:now:)`` after a timeout.
    func tick(now: ContinuousClock.Instant = .now) -> [ConnectionEvent] { handle(revents: 0, now: now) }
    var wantsReadable: Bool { interest.read }
    var wantsWritable: Bool { interest.write }
    var nextDeadline: ContinuousClock.Instant? { interest.deadline }

    // MARK: - I/O

    /// Writes queued output now (for adapters in this module that answer inside the loop).
    func flush(now: ContinuousClock.Instant) {
        guard !output.isEmpty else { return }
        do {
            _ = try output.flush(to: fileDescriptor, nonBlocking: true)
        } catch {
            transportError = error
            machine.transportFailed(now: now)
            execute()
            return
        }
        machine.outputWritten(remaining: output.isEmpty ? 0 : max(1, output.pendingByteCount), now: now)
        execute()
    }

    private func read(now: ContinuousClock.Instant) {
        var reads = 0
        while reads < Self.maxReadsPerCall, status.interest.read {
            reads += 1
            var last = ConnectionStateMachine.ReadResult.wouldBlock
            var drained = false
            do {
                try machine.receive(now: now, scratch: Self.threadScratch) {
                    (space) throws(EndpointMuxError) -> ConnectionStateMachine.ReadResult in
                    let before = received.count
                    switch try receiver.receiveWithoutWaiting(
                        from: fileDescriptor, into: space, fileDescriptors: &received)
                    {
                    case let .received(n):
                        drained = n < space.count
                        last = .received(byteCount: n, fileDescriptorCount: received.count - before)
                    case .endOfFile: last = .endOfInput
                    case .wouldBlock: last = .wouldBlock
                    }
                    return last
                }
            } catch {
                if error.code == .fileDescriptorsDropped {
                    machine.fileDescriptorsLost(reason: error.description, now: now)
                } else {
                    transportError = error
                    machine.transportFailed(now: now)
                }
                execute()
                return
            }
            execute()
            // A short read took everything the socket held: another read would only find
            // EAGAIN (readiness is level-triggered, so whatever arrives next wakes the loop).
            guard case .received = last, !drained else { return }
        }
    }

    /// The calling thread's read scratch (see ``ConnectionStateMachine/receive(now:scratch:_:)``);
    /// `nil` if it cannot be allocated (the read then goes into the connection's storage).
    private static var threadScratch: UnsafeMutableRawBufferPointer? {
        guard let base = endpointmux_thread_scratch() else { return nil }
        return UnsafeMutableRawBufferPointer(start: base, count: Int(ENDPOINTMUX_SCRATCH_BYTES))
    }

    /// Carries out the machine's actions, in order.
    private func execute() {
        // The batch is worked on as a local (no access checks per action) and its actions
        // are moved out one by one, not copied and then destroyed; the emptied storage is
        // kept for the next batch.
        var batch: [ConnectionStateMachine.Action] = []
        swap(&batch, &self.batch)
        machine.swapActions(&batch)
        statusIsStale = true  // every change of the machine ends here
        if var observer {
            for action in batch { observer.observe(action) }
            observer.flush(machine.takeObservations(), transportError: transportError?.description)
            self.observer = observer
        }
        events.reserveCapacity(events.count + batch.count)  // one allocation per batch, not a regrowth per event
        func carryOut(_ action: consuming ConnectionStateMachine.Action) {
            switch consume action {
            case let .deliver(event):
                switch consume event {
                case let .payload(frame): events.append(.payload(frame))
                case let .legacyTakeover(bytes): events.append(.legacyTakeover(bytes))
                case let .legacyMessage(bytes): events.append(.legacyMessage(bytes))
                case let .control(message, count):
                    events.append(
                        .control(
                            ReceivedControlMessage(
                                message: message,
                                fileDescriptors: received.dequeue(count))))
                case let .closed(end):
                    output = OutboundQueue()  // undeliverable now; its fds close
                    received.closeAll()
                    events.append(.closed(ConnectionEnd(end, transportError: transportError)))
                }
            case let .write(bytes, count):
                if count == 0 {
                    output.enqueue(bytes)
                } else {
                    output.enqueue(bytes, fileDescriptors: sending.dequeue(count))
                }
            case let .closeReceivedFileDescriptors(count):
                var unclaimed = received.dequeue(count)
                unclaimed.closeAll()
            case .shutdownOutput:
                shutdown(fileDescriptor, Int32(SHUT_WR))
            }
        }
        batch.drain(placeholder: .shutdownOutput, carryOut)
        if batch.capacity <= 64 { self.batch = batch }
    }
}

extension ConnectionEnd {
    /// The adapter's view of the machine's end.
    init(_ end: ConnectionStateMachine.End, transportError: EndpointMuxError?) {
        switch end {
        case .peerClosed: self = .peerClosed
        case let .peerClosedMidMessage(n): self = .peerClosedMidMessage(bufferedByteCount: n)
        case let .failed(epitaph): self = .failed(epitaph)
        case .closedByDaemon: self = .closedByDaemon
        case .transportFailed:
            self = .transportError(transportError ?? .system(operation: "sendmsg", errno: EIO))
        }
    }
}
