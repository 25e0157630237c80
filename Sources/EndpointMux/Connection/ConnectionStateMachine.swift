/// The per-connection policy of EndpointMux, with no I/O: every adapter (the POSIX
/// ``ConnectionDriver``, `AsyncConnection`, `ServiceServer`, the SwiftNIO handler and
/// decoder) executes what this machine decides, and decides nothing itself.
///
/// Inputs: bytes received (with how many fds came with them), end of input, how much
/// output is still unwritten, the current instant, and the daemon's sends and close.
/// Outputs: ``Action``s, taken in order with ``nextAction()`` after every input — events
/// for the daemon, bytes (with fds) to write, received fds to close, shut down writing —
/// and the ``interest``: read or not, write or not, and the next deadline.
///
/// It never reads a clock: every input carries `now`, and each adapter call passes a later
/// instant than the one before. An end found while events were delivered (the peer's EOF
/// or a fatal error right after good messages) is *deferred* to the next input, so the
/// daemon's answers to those events are queued ahead of any epitaph; ``interest`` then
/// asks to be called again at once.
///
/// What it decides, and where:
/// - routing of every message through a ``MuxSession`` (legacy modes, probes, frames,
///   control messages and their fd accounting);
/// - every limit: queued fds, legacy message size, queued output (past
///   ``ConnectionOptions/maxQueuedOutputByteCount`` it stops *deciding* input as well as
///   reading it, so memory is bounded by the caps whatever the peer sends);
/// - the idle, partial-message, waiting-for-fds and drain timers;
/// - the epitaph: none for legacy peers, an `rpc.epitaph` (after a -32050 answer to a
///   request still waiting for fds) for JSON-FD peers and for input that looks like JSON,
///   a v1 EVENT frame otherwise;
/// - the close sequence: answers first, then the epitaph, `shutdown(SHUT_WR)`, a bounded
///   drain, and ``Event/closed(_:)``.
package struct ConnectionStateMachine: Sendable {
    /// Something the daemon acts on.
    package enum Event: Sendable {
        /// A v1 frame on a served lane (any kind), copied out of the receive buffer.
        case payload(Frame)
        /// Sticky legacy mode: everything buffered so far, untouched; the machine has
        /// stepped aside and the daemon now reads the connection itself.
        case legacyTakeover([UInt8])
        /// Per-message legacy mode: one legacy message.
        case legacyMessage([UInt8])
        /// A control message and how many fds, from the front of the received-fd queue,
        /// belong to it.
        case control(ControlMessage, fileDescriptorCount: Int)
        /// The connection is over; the adapter closes (or releases) the socket.
        case closed(End)
    }

    /// Why a connection ended.
    package enum End: Hashable, Sendable {
        /// The peer closed its side at a message boundary.
        case peerClosed
        /// The peer closed its side inside a message.
        case peerClosedMidMessage(bufferedByteCount: Int)
        /// The machine ended the connection after this epitaph (nil: none was sent).
        case failed(Epitaph?)
        /// The daemon closed it.
        case closedByDaemon
        /// A system call failed (the adapter knows which).
        case transportFailed
    }

    /// What the adapter does next.
    package enum Action: Sendable {
        /// Hand this to the daemon.
        case deliver(Event)
        /// Queue these bytes for the peer, with the first `fileDescriptorCount` fds the
        /// daemon handed to the send that produced them.
        case write([UInt8], fileDescriptorCount: Int)
        /// Close this many fds from the front of the received-fd queue (unclaimed).
        case closeReceivedFileDescriptors(Int)
        /// Everything is written: `shutdown(SHUT_WR)`.
        case shutdownOutput
    }

    /// What a read produced.
    package enum ReadResult: Sendable, Hashable {
        /// `byteCount` bytes (≥ 1) and `fileDescriptorCount` fds arrived.
        case received(byteCount: Int, fileDescriptorCount: Int)
        /// The peer ended its output.
        case endOfInput
        /// Nothing now.
        case wouldBlock
    }

    private enum Ending: Sendable {
        case failure(Epitaph?)
        case inputEnded(End)
    }

    private enum State: Sendable {
        case active
        case legacyTakenOver
        /// An end decided while events were delivered, carried out by the first input
        /// after `since`.
        case ending(Ending, since: MonotonicInstant)
        /// The epitaph (if any) is queued; shut down once output is written.
        case closing(End)
        /// Output shut down; reading and discarding until EOF or the deadline.
        case draining(End, deadline: MonotonicInstant)
        case closed
    }

    /// The daemon's mux.
    package let mux: EndpointMux
    /// Behaviour settings.
    package let options: ConnectionOptions

    private var state = State.active
    private var session: MuxSession
    private var input = ReceiveBuffer()
    private var actions: [Action] = []
    private var actionIndex = 0
    /// Received fds not yet claimed by a message (the adapter holds them, in order).
    private(set) package var queuedFileDescriptorCount = 0
    /// Bytes handed out in `.write` actions and not yet reported written.
    private var unwrittenByteCount = 0
    private var lastActivity: MonotonicInstant
    private var partialSince: MonotonicInstant?
    private var fileDescriptorWaitSince: MonotonicInstant?
    private var endOfInput = false
    /// The peer has spoken the daemon's legacy protocol: no epitaphs for it.
    private var spokeLegacy = false
    /// The connection failed in the control layer: its epitaph is an `rpc.epitaph`.
    private var failedInControl = false
    private var jsonRPCCode = JSONRPCErrorObject.fileDescriptorErrorCode
    /// Events delivered in the current turn (an end found now is deferred).
    private var deliveredSinceInput = false
    /// Events delivered in the current turn; at ``ConnectionOptions/maxEventsPerTurn``
    /// deciding pauses until the next turn, after the daemon has answered them.
    private var deliveredInTurn = 0
    /// Deciding paused with input still buffered (resumed by the next turn).
    private var decidingPaused = false
    /// The instant of the current turn.
    private var turn: MonotonicInstant
    /// Events the daemon is still working on (answers may follow): a deferred end waits
    /// for them, and past ``ConnectionOptions/maxOutstandingWork`` nothing more is decided.
    private(set) package var outstandingWork = 0

    /// What the machine did on its own since ``takeObservations()`` was last called, for
    /// adapters that log and count it (they observe; the machine decided).
    package struct Observations: Sendable {
        /// Identity probes answered (the answers are in `.write` actions).
        package var probesAnswered = 0
        /// The epitaph queued for the peer, if one was (none for legacy peers).
        package var epitaph: Epitaph?
    }
    private var observations = Observations()

    /// Returns what was observed since the last call and starts counting afresh (one
    /// in-place access; adapters call it once per batch of actions).
    package mutating func takeObservations() -> Observations {
        defer { observations = Observations() }
        return observations
    }

    /// A machine for a new connection at `now`.
    package init(mux: EndpointMux, options: ConnectionOptions = ConnectionOptions(), now: ContinuousClock.Instant) {
        let now = MonotonicInstant(now)
        self.mux = mux
        self.options = options
        self.session = MuxSession(mux: mux)
        self.lastActivity = now
        self.turn = now
    }

    // MARK: - Outputs

    /// The next action, in order; `nil` when there is none.
    package mutating func nextAction() -> Action? {
        guard actionIndex < actions.count else { return nil }
        let action = actions[actionIndex]
        actionIndex += 1
        if actionIndex == actions.count {
            actions.removeAll(keepingCapacity: actions.count <= 16)
            actionIndex = 0
        }
        return action
    }

    /// Exchanges the pending actions, in order, with `buffer` (which should be empty): the
    /// adapter takes a whole batch with one access and gives back its emptied storage.
    package mutating func swapActions(_ buffer: inout [Action]) {
        if actionIndex > 0 {
            actions.removeFirst(actionIndex)
            actionIndex = 0
        }
        swap(&actions, &buffer)
    }

    /// Whether actions are pending.
    package var hasActions: Bool { actionIndex < actions.count }

    /// ``interest`` and ``isClosed`` through a mutating (in-place) access: an adapter class
    /// holding the machine reads them without copying the whole machine, as a getter call
    /// across modules may.
    package mutating func status() -> (interest: ConnectionInterest, isClosed: Bool) {
        (interest, isClosed)
    }

    /// What the adapter waits for.
    package var interest: ConnectionInterest {
        ConnectionInterest(read: wantsToRead, write: unwrittenByteCount > 0, monotonicDeadline: nextDeadline)
    }

    /// Whether the connection is over (``Event/closed(_:)`` was delivered).
    package var isClosed: Bool { if case .closed = state { true } else { false } }

    /// Whether the daemon took the connection over (sticky legacy).
    package var isTakenOver: Bool { if case .legacyTakenOver = state { true } else { false } }

    /// Bytes of input buffered (for tests of bounded memory).
    package var bufferedByteCount: Int { input.count }
    /// Bytes of receive storage held.
    package var receiveStorageByteCount: Int { input.capacity }

    private var outputIsBackedUp: Bool {
        unwrittenByteCount > options.maxQueuedOutputByteCount || outstandingWork >= options.maxOutstandingWork
    }

    private var wantsToRead: Bool {
        switch state {
        case .active: return !outputIsBackedUp && !endOfInput && !decidingPaused
        case .legacyTakenOver: return options.streamsAfterTakeover && !outputIsBackedUp && !endOfInput
        case .draining: return !endOfInput
        case .ending, .closing, .closed: return false
        }
    }

    /// A message waiting for its fds is also an incomplete message: the shorter of the two
    /// timeouts applies.
    private var fileDescriptorWaitLimit: Duration? {
        switch (options.fileDescriptorTimeout, options.partialMessageTimeout) {
        case let (fds?, partial?): return min(fds, partial)
        case let (fds, partial): return fds ?? partial
        }
    }

    private var nextDeadline: MonotonicInstant? {
        switch state {
        case .active:
            if decidingPaused { return turn }  // call again: the next turn decides on
            var deadline: MonotonicInstant?
            func earliest(_ candidate: MonotonicInstant) {
                deadline = min(deadline ?? candidate, candidate)
            }
            if let since = fileDescriptorWaitSince, let limit = fileDescriptorWaitLimit { earliest(since + limit) }
            if let since = partialSince, let limit = options.partialMessageTimeout { earliest(since + limit) }
            if input.isEmpty, fileDescriptorWaitSince == nil, let limit = options.idleTimeout {
                earliest(lastActivity + limit)
            }
            return deadline
        case let .ending(_, since): return outstandingWork > 0 ? nil : since
        case let .draining(_, deadline): return deadline
        case .closing, .legacyTakenOver, .closed: return nil
        }
    }

    // MARK: - Inputs

    /// Reads into the receive buffer: `read` fills the space it is given and says what
    /// happened; the machine then decides every complete message. Call only while
    /// ``interest`` says `read` (and again after `.received`, as the adapter's fairness
    /// allows). Errors thrown by `read` propagate unchanged, nothing decided.
    ///
    /// `scratch`, when given, is memory the adapter lends for this call (e.g. one buffer
    /// per thread): while no input is buffered, the read goes there and only the bytes
    /// received are copied into the connection's own storage, so a connection that
    /// answers what it reads allocates no read-sized chunk per read.
    package mutating func receive<E: Error>(
        now: ContinuousClock.Instant, scratch: UnsafeMutableRawBufferPointer? = nil,
        _ read: (UnsafeMutableRawBufferPointer) throws(E) -> ReadResult
    ) throws(E) {
        let now = MonotonicInstant(now)
        beginInput(now: now)
        guard wantsToRead else { return }
        var result = ReadResult.wouldBlock
        if let scratch, input.isEmpty, !scratch.isEmpty {
            let space = UnsafeMutableRawBufferPointer(rebasing: scratch[..<min(scratch.count, readSize)])
            result = try read(space)
            if case let .received(n, _) = result, n > 0 {
                input.append(UnsafeRawBufferPointer(rebasing: space[..<min(n, space.count)]))
            }
        } else {
            _ = try input.append(minimumSpace: readSize) { (space) throws(E) -> Int in
                result = try read(space)
                if case let .received(n, _) = result { return n }
                return 0
            }
        }
        apply(result, now: now)
    }

    /// Takes a copy of `bytes` (and the count of fds that came with them) as input; for
    /// adapters whose transport reads into buffers of its own.
    package mutating func receive(
        copying bytes: UnsafeRawBufferPointer, fileDescriptorCount: Int = 0, now: ContinuousClock.Instant
    ) {
        let now = MonotonicInstant(now)
        beginInput(now: now)
        guard !bytes.isEmpty || fileDescriptorCount > 0 else { return }
        switch state {
        case .active:
            input.append(bytes)
            apply(.received(byteCount: bytes.count, fileDescriptorCount: fileDescriptorCount), now: now)
        case .legacyTakenOver where options.streamsAfterTakeover:
            input.append(bytes)
            apply(.received(byteCount: bytes.count, fileDescriptorCount: fileDescriptorCount), now: now)
        case .draining:
            apply(.received(byteCount: bytes.count, fileDescriptorCount: fileDescriptorCount), now: now)
        case .ending, .closing, .legacyTakenOver, .closed:
            discardFileDescriptors(fileDescriptorCount)
        }
    }

    /// The peer ended its output (for adapters that learn it outside ``receive(now:scratch:_:)``).
    package mutating func receiveEndOfInput(now: ContinuousClock.Instant) {
        let now = MonotonicInstant(now)
        beginInput(now: now)
        apply(.endOfInput, now: now)
    }

    /// The adapter wrote some output: `remaining` is what is still unwritten (bytes; at
    /// least 1 while fds wait to go). Reaching 0 while closing shuts down output; falling
    /// under the cap resumes deciding buffered input.
    package mutating func outputWritten(remaining: Int, now: ContinuousClock.Instant) {
        let now = MonotonicInstant(now)
        let wasBackedUp = outputIsBackedUp
        unwrittenByteCount = max(0, remaining)
        beginInput(now: now)
        if wasBackedUp, !outputIsBackedUp, case .active = state, !input.isEmpty || endOfInput {
            decide(now: now)
        }
        advanceClose(now: now)
    }

    /// Runs the timers (call at ``ConnectionInterest/deadline``; calling early is harmless).
    package mutating func tick(now: ContinuousClock.Instant) {
        let now = MonotonicInstant(now)
        beginInput(now: now)
        switch state {
        case .active:
            if let since = fileDescriptorWaitSince, let limit = fileDescriptorWaitLimit, now >= since + limit {
                failedInControl = true
                fail(
                    Epitaph(status: .timedOut, reason: "fds of a control message did not arrive within \(limit)"),
                    now: now)
            } else if let since = partialSince, let limit = options.partialMessageTimeout, now >= since + limit {
                fail(Epitaph(status: .timedOut, reason: "no complete message within \(limit)"), now: now)
            } else if input.isEmpty, fileDescriptorWaitSince == nil, let limit = options.idleTimeout,
                now >= lastActivity + limit
            {
                fail(Epitaph(status: .timedOut, reason: "connection idle for \(limit)"), now: now)
            }
        case let .draining(end, deadline) where now >= deadline:
            finish(end)
        default:
            break
        }
    }

    /// A system call on the connection failed: it ends at once, without an epitaph.
    package mutating func transportFailed(now: ContinuousClock.Instant) {
        let now = MonotonicInstant(now)
        beginInput(now: now)
        finish(.transportFailed)
    }

    /// `MSG_CTRUNC`: fds were lost, so no later fd can be matched to its message. Ends
    /// with an `rpc.epitaph` (only JSON-FD carries fds).
    package mutating func fileDescriptorsLost(reason: String, now: ContinuousClock.Instant) {
        let now = MonotonicInstant(now)
        beginInput(now: now)
        guard case .active = state else { return }
        failedInControl = true
        fail(Epitaph(status: .io, reason: reason), now: now)
    }

    // MARK: - The daemon's calls

    /// Queues a v1 frame. Frames over the cap are refused (nothing queued; the connection
    /// stays usable). Returns false when the connection no longer takes output.
    package mutating func send(_ frame: Frame) throws(FramingError) -> Bool {
        guard acceptsOutput else { return false }
        queueWrite(try frame.encoded(maxBodyByteCount: mux.limits.maxFrameBodyByteCount))
        return true
    }

    /// Queues a control message that carries `fileDescriptorCount` fds (its `fds` member
    /// is set from that count). Returns false when the connection no longer takes output:
    /// the adapter closes those fds then.
    package mutating func send(_ message: ControlMessage, fileDescriptorCount: Int = 0) -> Bool {
        guard acceptsOutput else { return false }
        queueWrite(message.encoded(fileDescriptorCount: fileDescriptorCount), fileDescriptorCount: fileDescriptorCount)
        return true
    }

    /// The daemon's bytes (no fds), for an adapter that queues output itself: counts them
    /// as unwritten output and returns them to be written at once. Returns nil when the
    /// connection no longer takes output, or when earlier actions are still pending (then
    /// the bytes are queued as a `.write` action behind them, keeping the order).
    package mutating func admit(_ bytes: [UInt8]) -> [UInt8]? {
        guard acceptsOutput, !bytes.isEmpty else { return nil }
        guard actionIndex >= actions.count else {
            queueWrite(bytes)
            return nil
        }
        unwrittenByteCount += bytes.count
        return bytes
    }

    /// Whether the adapter may append the daemon's fd-less output straight to its own
    /// output queue now (the connection takes output and no earlier action is pending);
    /// it then reports the bytes with ``countWrittenDirectly(_:)``. Otherwise it passes
    /// them through ``admit(_:)``, which keeps the order. `mutating` (it changes nothing)
    /// so that an adapter holding the machine in a class property calls it in place
    /// instead of copying the whole machine for a getter.
    package mutating func mayQueueOutputDirectly() -> Bool { acceptsOutput && actionIndex >= actions.count }

    /// Counts `byteCount` bytes the adapter appended to its output queue after
    /// ``mayQueueOutputDirectly`` said it may: unwritten output, as ``admit(_:)`` counts it.
    package mutating func countWrittenDirectly(_ byteCount: Int) {
        unwrittenByteCount += byteCount
    }

    /// Queues raw bytes (e.g. a legacy reply). Returns false when the connection no longer
    /// takes output.
    package mutating func send(bytes: [UInt8]) -> Bool {
        guard acceptsOutput else { return false }
        queueWrite(bytes)
        return true
    }

    /// Ends the connection from the daemon's side: `epitaph` (none for legacy peers), then
    /// shutdown, drain, ``Event/closed(_:)``.
    package mutating func close(epitaph: Epitaph, now: ContinuousClock.Instant) {
        let now = MonotonicInstant(now)
        beginInput(now: now)
        switch state {
        case .active, .legacyTakenOver:
            beginClosing(epitaph: spokeLegacy ? nil : epitaph, end: .closedByDaemon, now: now)
        case .ending:
            break  // carried out by beginInput already
        case .closing, .draining, .closed:
            break
        }
    }

    private var acceptsOutput: Bool {
        switch state {
        case .active, .legacyTakenOver, .ending: return true
        case .closing, .draining, .closed: return false
        }
    }

    // MARK: - Deciding

    /// Bytes to ask of the next read: the configured chunk, or what the frame at the
    /// front still needs when its header announced more.
    private var readSize: Int {
        let chunk = options.receiveChunkByteCount
        guard case .active = state, input.count >= V1Framing.headerByteCount else { return chunk }
        let announced = input.withUnsafeBytes { raw -> Int in
            guard raw[0] == V1Framing.framingByte else { return 0 }
            return Int(raw.loadUnaligned(fromByteOffset: 1, as: UInt32.self).littleEndian)
        }
        guard announced <= mux.limits.maxFrameBodyByteCount else { return chunk }
        return max(chunk, V1Framing.headerByteCount + announced - input.count)
    }

    /// Inputs with the same instant belong to one adapter call (a "turn"): events
    /// delivered earlier in the turn have not been answered yet.
    private mutating func beginInput(now: MonotonicInstant) {
        if now > turn {
            turn = now
            deliveredSinceInput = false
            deliveredInTurn = 0
            if decidingPaused, case .active = state {
                decidingPaused = false
                decide(now: now)
            }
        }
        if case let .ending(ending, since) = state, now > since, outstandingWork == 0 {
            carryOut(ending, now: now)
        }
    }

    /// The daemon started work on a delivered event off the adapter's turn (a handler on
    /// another thread or task): ends wait until ``workFinished(now:)``, so its answer goes
    /// before any epitaph.
    package mutating func workStarted() {
        outstandingWork += 1
    }

    /// The daemon finished work started with ``workStarted()`` (its answer, if any, was
    /// sent first). Carries out an end that waited for it; resumes deciding input.
    package mutating func workFinished(now: ContinuousClock.Instant) {
        let now = MonotonicInstant(now)
        outstandingWork = max(0, outstandingWork - 1)
        let wasThrottled = outstandingWork + 1 >= options.maxOutstandingWork
        beginInput(now: now)
        if outstandingWork == 0, case let .ending(ending, _) = state {
            carryOut(ending, now: now)
        } else if wasThrottled, case .active = state, !input.isEmpty || endOfInput {
            decide(now: now)
        }
    }

    private mutating func apply(_ result: ReadResult, now: MonotonicInstant) {
        switch result {
        case .wouldBlock:
            return
        case let .received(_, fileDescriptorCount):
            switch state {
            case .active:
                queuedFileDescriptorCount += fileDescriptorCount
                lastActivity = now
                decide(now: now)
            case .legacyTakenOver where options.streamsAfterTakeover:
                deliver(.legacyMessage(input.bytes))
                input.removeAll()
                discardFileDescriptors(fileDescriptorCount)
            default:
                input.removeAll()
                discardFileDescriptors(fileDescriptorCount)
            }
        case .endOfInput:
            endOfInput = true
            switch state {
            case .active:
                // Decides what is left and ends at the end of the stream, unless answers
                // back up first (then resuming does both).
                decide(now: now)
            case let .draining(end, _):
                finish(end)
            case .legacyTakenOver where options.streamsAfterTakeover:
                end(.inputEnded(.peerClosed), now: now)
            default:
                break
            }
        }
    }

    private mutating func decide(now: MonotonicInstant) {
        if queuedFileDescriptorCount > mux.limits.maxQueuedFileDescriptors {
            fail(
                MuxError.control(
                    .tooManyFileDescriptors(
                        count: queuedFileDescriptorCount, limit: mux.limits.maxQueuedFileDescriptors)), now: now)
            return
        }
        while case .active = state {
            // Bounded by construction: while answers back up, nothing more is decided; and
            // a turn delivers a bounded number of events, so the daemon's answers to them
            // are counted before more is decided.
            if outputIsBackedUp { return }
            if deliveredInTurn >= options.maxEventsPerTurn {
                decidingPaused = true
                return
            }
            if input.isEmpty && !endOfInput && session.waitingControlMessage == nil { break }
            let verdict: MuxVerdict
            do {
                let queued = queuedFileDescriptorCount
                let ended = endOfInput
                verdict = try input.withUnsafeBytes { (raw) throws(MuxError) in
                    try session.poll(raw, queuedFileDescriptors: queued, endOfInput: ended)
                }
            } catch {
                if endOfInput, case .truncatedFrame = error, !session.hasSpokenControl {
                    end(.inputEnded(.peerClosedMidMessage(bufferedByteCount: input.count)), now: now)
                    return
                }
                fail(error, now: now)
                return
            }
            switch verdict {
            case .needMoreBytes, .needMoreFileDescriptors:
                if endOfInput {
                    end(
                        .inputEnded(
                            input.isEmpty
                                ? .peerClosed
                                : .peerClosedMidMessage(bufferedByteCount: input.count)), now: now)
                    return
                }
                if case let .needMoreFileDescriptors(needed, _) = verdict {
                    guard options.transportCarriesFileDescriptors else {
                        failedInControl = true
                        fail(
                            Epitaph(
                                status: .notSupported,
                                reason: "control message declared \(needed) fds; this transport cannot carry them"),
                            now: now)
                        return
                    }
                    if fileDescriptorWaitSince == nil { fileDescriptorWaitSince = now }
                    partialSince = nil
                } else if !input.isEmpty {
                    if session.hasSpokenControl, session.isBetweenMessages, isAllWhitespace {
                        // Continuation bytes of batched fds: nothing is pending.
                        input.removeAll()
                    } else if partialSince == nil {
                        partialSince = now
                    }
                }
                return
            case .endOfStream:
                end(.inputEnded(.peerClosed), now: now)
                return
            case .legacy:
                guard decideLegacy(now: now) else { return }
            case let .probeAnswered(reply, consumed):
                queueWrite(reply)
                observations.probesAnswered += 1
                input.consume(consumed)
            case let .payload(view, consumed):
                if consumed == input.count, view.payloadRange.count >= Frame.separatePayloadByteCount {
                    // A big frame that fills the buffer: its storage becomes the payload.
                    var envelope = view
                    envelope.payloadRange = view.payloadRange.lowerBound..<view.payloadRange.lowerBound
                    var frame = input.withUnsafeBytes { envelope.frame(in: $0) }
                    frame.payload = input.take(view.payloadRange)
                    deliver(.payload(frame))
                } else {
                    deliver(.payload(input.withUnsafeBytes { view.frame(in: $0) }))
                    input.consume(consumed)
                }
            case let .control(message, count, consumed):
                queuedFileDescriptorCount -= count
                deliver(.control(message, fileDescriptorCount: count))
                input.consume(consumed)
            case let .invalidControl(violation, id, count, consumed):
                discardFileDescriptors(count, claimed: true)
                input.consume(consumed)
                // JSON-RPC 2.0 §5: Invalid Request, with "id": null when no usable id exists.
                let reply = ControlMessage.response(
                    ControlResponse(
                        id: id ?? .null, error: .invalidRequest(data: .string(violation.description))))
                queueWrite(reply.encoded())
            }
            partialSince = nil
            fileDescriptorWaitSince = nil
            lastActivity = now
        }
        if input.isEmpty { partialSince = nil }
    }

    /// A legacy verdict; false when deciding stops.
    private mutating func decideLegacy(now: MonotonicInstant) -> Bool {
        switch options.legacyMode {
        case .reject:
            let first = input.withUnsafeBytes { raw in raw.first { !MuxSession.isWhitespace($0) } ?? 0 }
            if let kind = Self.jsonValueKind(startingWith: first) {
                // JSON, but not an object: answer in the control channel's framing.
                fail(MuxError.control(.topLevelNotObject(kind)), now: now)
            } else {
                fail(
                    Epitaph(
                        status: .invalidFrame,
                        reason: FramingError.unsupportedFramingVersion(first).description), now: now)
            }
            return false
        case .sticky:
            spokeLegacy = true
            deliver(.legacyTakeover(input.bytes))
            input.removeAll()
            discardFileDescriptors(queuedFileDescriptorCount, claimed: true)
            state = .legacyTakenOver
            return false
        case let .perMessage(delimit):
            spokeLegacy = true
            switch input.withUnsafeBytes({ delimit($0) }) {
            case .needMoreBytes:
                if input.count > options.maxLegacyMessageByteCount {
                    fail(nil, now: now)
                } else if endOfInput {
                    // The peer ended inside a line: answer what it sent complete, then close.
                    end(.inputEnded(.peerClosedMidMessage(bufferedByteCount: input.count)), now: now)
                } else if partialSince == nil {
                    partialSince = now
                }
                return false
            case let .complete(n) where n > 0 && n <= input.count:
                deliver(.legacyMessage(input.withUnsafeBytes { Array($0.prefix(n)) }))
                input.consume(n)
                return true
            case .complete, .invalid:
                fail(nil, now: now)
                return false
            }
        }
    }

    private static func jsonValueKind(startingWith byte: UInt8) -> JSONValueKind? {
        switch byte {
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        default: return nil
        }
    }

    private var isAllWhitespace: Bool {
        input.withUnsafeBytes { raw in raw.allSatisfy(MuxSession.isWhitespace) }
    }

    // MARK: - Ending

    private mutating func deliver(_ event: consuming Event) {
        deliveredSinceInput = true
        deliveredInTurn += 1
        actions.append(.deliver(consume event))
    }

    private mutating func queueWrite(_ bytes: consuming [UInt8], fileDescriptorCount: Int = 0) {
        guard !bytes.isEmpty || fileDescriptorCount > 0 else { return }
        unwrittenByteCount += max(bytes.count, 1)
        actions.append(.write(consume bytes, fileDescriptorCount: fileDescriptorCount))
    }

    private mutating func discardFileDescriptors(_ count: Int, claimed: Bool = false) {
        guard count > 0 else { return }
        if claimed { queuedFileDescriptorCount -= count }
        actions.append(.closeReceivedFileDescriptors(count))
    }

    private mutating func fail(_ error: MuxError, now: MonotonicInstant) {
        jsonRPCCode = error.jsonRPCCode
        if case .control = error { failedInControl = true }
        fail(error.epitaph, now: now)
    }

    private mutating func fail(_ epitaph: Epitaph?, now: MonotonicInstant) {
        end(.failure(epitaph), now: now)
    }

    /// Ends now, or later when this turn delivered events the daemon may answer or the
    /// daemon is still working on earlier ones.
    private mutating func end(_ ending: Ending, now: MonotonicInstant) {
        if deliveredSinceInput || outstandingWork > 0, isActiveOrTakenOver {
            state = .ending(ending, since: now)
            return
        }
        carryOut(ending, now: now)
    }

    private var isActiveOrTakenOver: Bool {
        switch state {
        case .active, .legacyTakenOver: true
        default: false
        }
    }

    private mutating func carryOut(_ ending: Ending, now: MonotonicInstant) {
        switch ending {
        case let .failure(epitaph):
            let sent = spokeLegacy ? nil : epitaph
            beginClosing(epitaph: sent, end: .failed(sent), now: now)
        case let .inputEnded(end):
            beginClosing(epitaph: nil, end: end, now: now)
        }
    }

    private mutating func beginClosing(epitaph: Epitaph?, end: End, now: MonotonicInstant) {
        let waiting = session.waitingControlMessage
        input.removeAll()
        discardFileDescriptors(queuedFileDescriptorCount, claimed: true)
        partialSince = nil
        fileDescriptorWaitSince = nil
        if let epitaph {
            if session.hasSpokenControl || waiting != nil || failedInControl || !session.isBetweenMessages {
                // JSON-FD: answer the request still waiting for its fds, then rpc.epitaph.
                if case let .request(request)? = waiting {
                    let error = JSONRPCErrorObject.fileDescriptorError(data: .string(epitaph.reason))
                    queueWrite(ControlMessage.response(ControlResponse(id: request.id, error: error)).encoded())
                }
                let notification = ControlNotification.epitaph(
                    status: Int(epitaph.status.rawValue), code: jsonRPCCode, reason: epitaph.reason)
                queueWrite(ControlMessage.notification(notification).encoded())
                observations.epitaph = epitaph
            } else if let bytes = try? epitaph.v1Frame(lane: options.epitaphLane).encoded() {
                queueWrite(bytes)
                observations.epitaph = epitaph
            }
        }
        state = .closing(end)
        advanceClose(now: now)
    }

    /// Closing with everything written: shut down output and drain.
    private mutating func advanceClose(now: MonotonicInstant) {
        guard case let .closing(end) = state, unwrittenByteCount == 0 else { return }
        actions.append(.shutdownOutput)
        if endOfInput {
            finish(end)
        } else {
            state = .draining(end, deadline: now + options.drainTimeout)
        }
    }

    private mutating func finish(_ end: End) {
        if case .closed = state { return }
        input.removeAll()
        discardFileDescriptors(queuedFileDescriptorCount, claimed: true)
        state = .closed
        actions.append(.deliver(.closed(end)))
    }
}

/// What a connection waits for: readability, writability, and the instant by which the
/// adapter must call again (timers, a deferred end), if any.
public struct ConnectionInterest: Hashable, Sendable {
    /// Wait for the socket to become readable.
    public var read: Bool
    /// Wait for the socket to become writable.
    public var write: Bool
    /// ``deadline``, stored in a form whose layout is fixed (see ``MonotonicInstant``).
    package var monotonicDeadline: MonotonicInstant?

    /// Call again at this instant at the latest (`nil`: no timer runs).
    public var deadline: ContinuousClock.Instant? {
        get { monotonicDeadline?.instant }
        set { monotonicDeadline = newValue.map(MonotonicInstant.init) }
    }

    /// Creates an interest.
    public init(read: Bool, write: Bool, deadline: ContinuousClock.Instant?) {
        self.init(read: read, write: write, monotonicDeadline: deadline.map(MonotonicInstant.init))
    }

    /// Creates an interest whose deadline is already a ``MonotonicInstant``.
    package init(read: Bool, write: Bool, monotonicDeadline: MonotonicInstant?) {
        self.read = read
        self.write = write
        self.monotonicDeadline = monotonicDeadline
    }

    /// `poll(2)`/`epoll` event bits for this interest (`POLLIN` = 1, `POLLOUT` = 4).
    public var pollEvents: Int16 { (read ? 1 : 0) | (write ? 4 : 0) }

    /// Milliseconds until ``deadline`` from `now`, rounded up, for `poll(2)`'s timeout
    /// (-1: none; 0: call at once).
    public func pollTimeout(now: ContinuousClock.Instant) -> Int32 {
        guard let deadline = monotonicDeadline else { return -1 }
        return deadline.pollTimeout(now: MonotonicInstant(now))
    }
}
