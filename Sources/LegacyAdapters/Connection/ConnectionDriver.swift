import CSocketShims
public import EndpointMux
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Drives one connection over a socket the daemon owns: reads what arrived, lets the
/// ``EndpointMux`` decide, answers probes itself, hands everything else to the daemon as
/// ``ConnectionEvent``s, and ends bad connections with an epitaph.
///
/// The driver *borrows* the fd: it never closes it (after ``ConnectionEvent/closed(_:)``
/// the daemon does) and it works with the daemon's own event loop:
/// - call ``readable(now:)`` when the fd is readable and ``wantsReadable`` (a non-blocking
///   fd is read until it would block, at most 16 reads per call; a blocking fd once);
/// - call ``writable()`` when ``wantsWritable`` and the fd is writable;
/// - call ``tick(now:)`` at ``nextDeadline`` for the idle, partial-message and drain timers
///   (and to carry out an end decided while events were delivered, see ``nextDeadline``).
///
/// When the peer ends its input, or the connection fails, in a ``readable(now:)`` call that
/// also delivered events, the end is carried out by a later call, so the answers the daemon
/// sends to those events are queued ahead of any epitaph; at the peer's end of input,
/// answers still queued are flushed before ``ConnectionEvent/closed(_:)``.
///
/// A driver is used from one thread at a time.
public final class ConnectionDriver {
    /// The borrowed socket.
    public let fileDescriptor: Int32
    /// The mux deciding every message.
    public let mux: EndpointMux
    /// Behaviour settings.
    public let options: ConnectionOptions

    enum State {
        case active
        case legacyTakenOver
        /// The connection is to end, decided by a ``readable(now:)`` call that also delivered
        /// events; the first ``tick(now:)`` after `since` carries `ending` out, so the
        /// daemon's answers to those events are queued before any epitaph and flushed before
        /// ``ConnectionEvent/closed(_:)``.
        case ending(Ending, since: ContinuousClock.Instant)
        /// Epitaph queued; after it is flushed, `shutdown(SHUT_WR)` and drain.
        case closing(end: ConnectionEnd)
        /// Draining the peer's bytes until EOF or `deadline`.
        case draining(end: ConnectionEnd, deadline: ContinuousClock.Instant)
        case closed
    }

    /// How a connection ends.
    enum Ending {
        /// Fail, sending this epitaph (nil: none).
        case failure(Epitaph?)
        /// The peer ended its input: flush what is queued, then end with this.
        case inputEnded(ConnectionEnd)
    }

    private(set) var state: State = .active
    private var session: MuxSession
    private var input = ReceiveBuffer()
    private var receiver = SocketReceiver()
    private var receivedFileDescriptors = FileDescriptorQueue()
    private var output = OutboundQueue()
    private let nonBlocking: Bool
    private var lastActivity: ContinuousClock.Instant
    private var partialSince: ContinuousClock.Instant?
    /// Whether the peer has spoken the daemon's legacy protocol (no epitaphs for it).
    private var spokeLegacy = false
    /// Whether the connection failed in the JSON-FD control layer (or lost fds to
    /// `MSG_CTRUNC`): its epitaph is an `rpc.epitaph` even before a first control message.
    private var failedInControl = false

    /// Creates a driver for a connected stream socket the daemon owns.
    public init(borrowing fileDescriptor: Int32, mux: EndpointMux, options: ConnectionOptions = ConnectionOptions(),
                now: ContinuousClock.Instant = .now) {
        self.fileDescriptor = fileDescriptor
        self.mux = mux
        self.options = options
        self.lastActivity = now
        self.session = MuxSession(mux: mux)
        let flags = fcntl(fileDescriptor, F_GETFL)
        self.nonBlocking = flags >= 0 && flags & O_NONBLOCK != 0
    }

    /// Whether output is waiting for the fd to become writable.
    public var wantsWritable: Bool { !output.isEmpty }

    /// Whether the connection is over.
    public var isClosed: Bool { if case .closed = state { return true } else { return false } }

    /// Whether the driver wants to read this fd now: false after a sticky legacy takeover
    /// or close, and while more than ``ConnectionOptions/maxQueuedOutputByteCount`` bytes
    /// of answers wait for the peer to read them (backpressure). Poll for readability
    /// only when this is true.
    public var wantsReadable: Bool {
        switch state {
        case .active: return !outputIsBackedUp
        case .draining: return true
        // While closing, only the flush matters (the peer may already be at EOF, which
        // would keep the fd readable and the loop spinning).
        case .ending, .closing, .legacyTakenOver, .closed: return false
        }
    }

    /// When ``tick(now:)`` must next be called, if ever: for the timers, to end a connection
    /// whose end was decided while events were being delivered (so the daemon's answers go
    /// first), and to deliver events from a send that failed.
    public var nextDeadline: ContinuousClock.Instant? {
        // Events from a send that failed are delivered by the next call: ask for one now.
        if !pendingEvents.isEmpty { return lastActivity }
        switch state {
        case .active:
            if let partialSince, let limit = options.partialMessageTimeout { return partialSince + limit }
            if input.isEmpty, let limit = options.idleTimeout { return lastActivity + limit }
            return nil
        case let .draining(_, deadline): return deadline
        case let .ending(_, since): return since
        case .closing, .legacyTakenOver, .closed: return nil
        }
    }

    /// `recvmsg` calls per ``readable(now:)`` at most (then poll again; level-triggered).
    static let maxReadsPerCall = 16

    private var outputIsBackedUp: Bool { output.pendingByteCount > options.maxQueuedOutputByteCount }

    /// Reads what the socket has (at most 16 reads per call; poll again while it stays
    /// readable), decides every complete message, writes probe answers, and returns the
    /// events for the daemon, in order.
    public func readable(now: ContinuousClock.Instant = .now) -> [ConnectionEvent] {
        var events = takePendingEvents()
        var reads = 0
        readLoop: while true {
            switch state {
            case .active:
                // Bounded work per call: fairness between connections, and a consumer that
                // stops taking events (see `AsyncConnection`) stops the reading soon.
                if outputIsBackedUp || reads == Self.maxReadsPerCall { break readLoop }
                reads += 1
                var outcome = SocketIO.ReceiveOutcome.wouldBlock
                do {
                    _ = try input.append(minimumSpace: options.receiveChunkByteCount) {
                        (space) throws(TransportError) -> Int in
                        outcome = try receiver.receive(from: fileDescriptor, into: space,
                                                       fileDescriptors: &receivedFileDescriptors)
                        if case let .received(n) = outcome { return n }
                        return 0
                    }
                } catch {
                    if case .controlTruncated = error {
                        // Fds were lost, so no later fd can be matched to its message; only
                        // JSON-FD carries fds, so the epitaph is an rpc.epitaph.
                        failedInControl = true
                        fail(Epitaph(status: .io, reason: error.description), events: &events, now: now)
                    } else {
                        finish(.transportError(error), events: &events)
                    }
                    break readLoop
                }
                switch outcome {
                case .received:
                    lastActivity = now
                    decide(now: now, events: &events)
                    if !nonBlocking { break readLoop }
                case .wouldBlock:
                    break readLoop
                case .endOfFile:
                    decide(now: now, events: &events, endOfInput: true)
                    if case .active = state { end(.inputEnded(.peerClosed), events: &events, now: now) }
                    break readLoop
                }
            case .draining:
                // drainOnce reads until the socket would block; EOF (or an error) ends the drain.
                if drainOnce() { finishDrain(events: &events) }
                break readLoop
            case .ending, .closing, .legacyTakenOver, .closed:
                break readLoop
            }
        }
        flushAfterEvents(events: &events)
        return events
    }

    /// Flushes queued output (call when ``wantsWritable`` and the fd is writable).
    /// Returns events only when the connection ends.
    public func writable(now: ContinuousClock.Instant = .now) -> [ConnectionEvent] {
        var events = takePendingEvents()
        flushAfterEvents(events: &events, now: now)
        return events
    }

    /// Runs the timers: idle and partial-message timeouts end the connection with a
    /// ``EpitaphStatus/timedOut`` epitaph; a drain that ran out of time closes.
    public func tick(now: ContinuousClock.Instant = .now) -> [ConnectionEvent] {
        var events = takePendingEvents()
        switch state {
        case .active:
            if let partialSince, let limit = options.partialMessageTimeout, now >= partialSince + limit {
                fail(Epitaph(status: .timedOut, reason: "no complete message within \(limit)"), events: &events, now: now)
            } else if input.isEmpty, let limit = options.idleTimeout, now >= lastActivity + limit {
                fail(Epitaph(status: .timedOut, reason: "connection idle for \(limit)"), events: &events, now: now)
            }
        case let .draining(_, deadline) where now >= deadline:
            finishDrain(events: &events)
        case let .ending(ending, since) where now > since:
            carryOut(ending, events: &events, now: now)
        default:
            break
        }
        return events
    }

    /// Queues a v1 frame for the peer.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` when it exceeds the cap;
    ///   nothing is queued then (the connection stays usable).
    public func send(_ frame: Frame) throws(FramingError) {
        guard !isClosed else { return }
        output.enqueue(try frame.encoded(maxBodyByteCount: mux.limits.maxFrameBodyByteCount))
        tryFlush()
    }

    /// Queues a control message (a response or notification) with `fileDescriptors`,
    /// which are sent with it by `SCM_RIGHTS` (batched as jsonrpc-fdpass requires) and
    /// closed here once sent; `fds` is set to their count.
    public func send(_ message: ControlMessage, fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue()) {
        guard !isClosed else { return }  // the fds close with the queue
        output.enqueue(message.encoded(fileDescriptorCount: fileDescriptors.count), fileDescriptors: fileDescriptors)
        tryFlush()
    }

    /// Queues raw bytes (e.g. a legacy reply) for the peer.
    public func send(bytes: [UInt8]) {
        guard !isClosed else { return }
        output.enqueue(bytes)
        tryFlush()
    }

    /// Ends the connection from the daemon's side: sends `epitaph` (v1 framing, or none
    /// for legacy peers), shuts down writing, drains, then reports
    /// ``ConnectionEvent/closed(_:)`` from a later ``readable(now:)``/``tick(now:)``.
    public func close(epitaph: Epitaph = Epitaph(status: .ok, reason: "closed by the server"),
                      now: ContinuousClock.Instant = .now) -> [ConnectionEvent] {
        var events: [ConnectionEvent] = []
        switch state {
        case .active, .legacyTakenOver:
            beginClosing(epitaph: spokeLegacy ? nil : epitaph, end: .closedByDaemon, events: &events, now: now)
        default:
            break
        }
        return events
    }

    // MARK: - Deciding

    private func decide(now: ContinuousClock.Instant, events: inout [ConnectionEvent], endOfInput: Bool = false) {
        if receivedFileDescriptors.count > mux.limits.maxQueuedFileDescriptors {
            fail(MuxError.control(.tooManyFileDescriptors(count: receivedFileDescriptors.count,
                                                          limit: mux.limits.maxQueuedFileDescriptors)),
                 events: &events, now: now)
            return
        }
        while case .active = state {
            if input.isEmpty && !endOfInput && session.waitingControlMessage == nil { break }
            let verdict: MuxVerdict
            do {
                let queued = receivedFileDescriptors.count
                verdict = try input.withUnsafeBytes { (raw) throws(MuxError) in
                    try session.poll(raw, queuedFileDescriptors: queued, endOfInput: endOfInput)
                }
            } catch {
                if endOfInput, case .truncatedFrame = error, !session.hasSpokenControl {
                    end(.inputEnded(.peerClosedMidMessage(bufferedByteCount: input.count)), events: &events, now: now)
                    return
                }
                fail(error, events: &events, now: now)
                return
            }
            switch verdict {
            case .needMoreBytes, .needMoreFileDescriptors:
                if endOfInput {
                    end(.inputEnded(input.isEmpty ? .peerClosed : .peerClosedMidMessage(bufferedByteCount: input.count)),
                        events: &events, now: now)
                    return
                }
                if partialSince == nil, !input.isEmpty { partialSince = now }
                return
            case .endOfStream:
                end(.inputEnded(.peerClosed), events: &events, now: now)
                return
            case .legacy:
                switch options.legacyMode {
                case .reject:
                    let first = input.withUnsafeBytes { $0.first ?? 0 }
                    fail(Epitaph(status: .invalidFrame, reason: FramingError.unsupportedFramingVersion(first).description),
                         events: &events, now: now)
                    return
                case .sticky:
                    spokeLegacy = true
                    events.append(.legacyTakeover(input.bytes))
                    input.removeAll()
                    receivedFileDescriptors.closeAll()
                    state = .legacyTakenOver
                    return
                case let .perMessage(delimit):
                    spokeLegacy = true
                    switch input.withUnsafeBytes({ delimit($0) }) {
                    case .needMoreBytes:
                        if input.count > options.maxLegacyMessageByteCount || endOfInput {
                            fail(nil, events: &events, now: now)
                            return
                        }
                        if partialSince == nil { partialSince = now }
                        return
                    case let .complete(n) where n > 0 && n <= input.count:
                        events.append(.legacyMessage(Array(input.bytes.prefix(n))))
                        input.consume(n)
                    case .complete, .invalid:
                        fail(nil, events: &events, now: now)
                        return
                    }
                }
            case let .probeAnswered(reply, consumed):
                output.enqueue(reply)
                input.consume(consumed)
            case let .payload(view, consumed):
                events.append(.payload(input.withUnsafeBytes { view.frame(in: $0) }))
                input.consume(consumed)
            case let .control(message, count, consumed):
                events.append(.control(ReceivedControlMessage(message: message,
                                                              fileDescriptors: receivedFileDescriptors.dequeue(count))))
                input.consume(consumed)
            case let .invalidControl(violation, id, count, consumed):
                var unclaimed = receivedFileDescriptors.dequeue(count)
                unclaimed.closeAll()
                input.consume(consumed)
                if let id {
                    let reply = ControlMessage.response(ControlResponse(
                        id: id, error: .invalidRequest(data: .string(violation.description))))
                    output.enqueue(reply.encoded())
                }
            }
            partialSince = nil
            lastActivity = now
        }
        if input.isEmpty { partialSince = nil }
    }

    // MARK: - Ending

    private func fail(_ epitaph: Epitaph?, events: inout [ConnectionEvent], now: ContinuousClock.Instant) {
        end(.failure(epitaph), events: &events, now: now)
    }

    private func fail(_ error: MuxError, events: inout [ConnectionEvent], now: ContinuousClock.Instant) {
        jsonRPCCode = error.jsonRPCCode
        if case .control = error { failedInControl = true }
        fail(error.epitaph, events: &events, now: now)
    }

    /// Ends the connection now, or, when this call has already delivered events the
    /// daemon may answer, at the next ``tick(now:)`` (``State/ending(_:since:)``).
    private func end(_ ending: Ending, events: inout [ConnectionEvent], now: ContinuousClock.Instant) {
        let delivered = events.contains { if case .closed = $0 { return false } else { return true } }
        if delivered, case .active = state {
            state = .ending(ending, since: now)
            return
        }
        carryOut(ending, events: &events, now: now)
    }

    private func carryOut(_ ending: Ending, events: inout [ConnectionEvent], now: ContinuousClock.Instant) {
        switch ending {
        case let .failure(epitaph):
            beginClosing(epitaph: spokeLegacy ? nil : epitaph, end: .failed(spokeLegacy ? nil : epitaph),
                         events: &events, now: now)
        case let .inputEnded(end):
            // Answers still queued go out first; then shutdown, drain (EOF is already in) and close.
            beginClosing(epitaph: nil, end: end, events: &events, now: now)
        }
    }

    /// The JSON-RPC code used in a JSON-FD epitaph.
    private var jsonRPCCode = JSONRPCErrorObject.fileDescriptorErrorCode

    private func beginClosing(epitaph: Epitaph?, end: ConnectionEnd, events: inout [ConnectionEvent],
                              now: ContinuousClock.Instant) {
        let waiting = session.waitingControlMessage
        input.removeAll()
        receivedFileDescriptors.closeAll()
        if let epitaph {
            if session.hasSpokenControl || waiting != nil || failedInControl {
                // JSON-FD: answer the request still waiting for its fds, then rpc.epitaph.
                if case let .request(request)? = waiting {
                    let error = JSONRPCErrorObject.fileDescriptorError(data: .string(epitaph.reason))
                    output.enqueue(ControlMessage.response(ControlResponse(id: request.id, error: error)).encoded())
                }
                let notification = ControlNotification.epitaph(
                    status: Int(epitaph.status.rawValue), code: jsonRPCCode, reason: epitaph.reason)
                output.enqueue(ControlMessage.notification(notification).encoded())
            } else if let bytes = try? epitaph.v1Frame(lane: options.epitaphLane).encoded() {
                output.enqueue(bytes)
            }
        }
        state = .closing(end: end)
        flushAfterEvents(events: &events, now: now)
    }

    /// Flushes output; moves a closing connection on to shutdown and draining.
    private func flushAfterEvents(events: inout [ConnectionEvent], now: ContinuousClock.Instant = .now) {
        if !output.isEmpty {
            do {
                _ = try output.flush(to: fileDescriptor)
            } catch {
                finish(.transportError(error), events: &events)
                return
            }
        }
        if case let .closing(end) = state, output.isEmpty {
            shutdown(fileDescriptor, Int32(SHUT_WR))
            state = .draining(end: end, deadline: now + options.drainTimeout)
            if drainOnce() { finishDrain(events: &events) }
        }
    }

    private func tryFlush() {
        var events: [ConnectionEvent] = []
        flushAfterEvents(events: &events)
        pendingEvents += events
    }

    /// Events produced outside a read (a send that hit a transport error); delivered by
    /// the next ``readable(now:)``, ``writable(now:)`` or ``tick(now:)``.
    private var pendingEvents: [ConnectionEvent] = []

    private func takePendingEvents() -> [ConnectionEvent] {
        defer { pendingEvents = [] }
        return pendingEvents
    }

    /// Reads and discards what is available; true once the peer's EOF (or an error) is seen.
    /// At most 256 KiB per call, so a peer that keeps sending cannot hold the thread.
    private func drainOnce() -> Bool {
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        for _ in 0..<16 {
            let n = scratch.withUnsafeMutableBytes { recv(fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { continue }
            if n == 0 { return true }
            if errno == EINTR { continue }
            return !(errno == EAGAIN || errno == EWOULDBLOCK)
        }
        return false
    }

    private func finishDrain(events: inout [ConnectionEvent]) {
        guard case let .draining(end, _) = state else { return }
        finish(end, events: &events)
    }

    private func finish(_ end: ConnectionEnd, events: inout [ConnectionEvent]) {
        if case .closed = state { return }  // one `.closed` per connection
        output = OutboundQueue()  // undeliverable now; its fds close
        input.removeAll()
        receivedFileDescriptors.closeAll()
        state = .closed
        events.append(.closed(end))
    }
}
