import CSocketShims
@_spi(Internals) public import EndpointMux
import EndpointMuxObservation
public import Logging
import Glibc

/// A capability broker on a Unix socket: clients ask it over the JSON-FD control channel to
/// `listen` on, `accept` from and `connect` to network endpoints (or meet at a `pair`
/// rendezvous), and get the connected sockets back as fds (`SCM_RIGHTS`), so a daemon with
/// no network of its own (an empty network namespace, a seccomp sandbox) can still serve one.
///
/// The broker is one thin user of the connection engine: every client is a connection of
/// the shared event loops (`LoopConnection` / ``ConnectionDriver``, which also answers
/// identity probes on the same socket), and every kernel listener and in-progress connect is
/// a source on the same loop. Decisions are the sans-IO `BrokerStateMachine`'s; this type
/// runs its actions. Nothing blocks: `accept(2)` runs only while an `accept` waits,
/// connects complete on writability, timeouts are loop deadlines. All of one broker's
/// clients share one loop thread, so the rendezvous between clients needs no lock.
///
/// When a client's connection ends, everything it owns is closed: listeners, connects in
/// progress, fds not yet delivered.
public final class BrokerServer: Sendable {
    /// The socket path served.
    public let socketPath: String
    /// The mux (and the identity its probe answers prove).
    package let mux: EndpointMux
    private let state: BrokerState

    /// Binds `socketPath` (as ``ServiceServer`` does: a live server there is
    /// an `EndpointMuxError` with code `alreadyRunning`, a stale socket is replaced) and serves.
    /// - Parameters:
    ///   - name: the service name its identity is established for.
    ///   - socketPath: the unix socket to bind.
    ///   - policy: what clients may do (default deny).
    ///   - limits: listeners and waiting requests per client, default timeouts and backlog.
    ///   - options: per-connection behaviour of the clients' connections.
    ///   - identity: what probe answers prove; `nil` builds this process's identity for
    ///     `name` (hashing the executable).
    ///   - logger: where client connection ends (with their reason), epitaphs and refused
    ///     accepts are logged (see ``ConnectionTelemetry``); `nil`, the default, logs
    ///     nothing. Metrics carry the dimension `service` = `name`.
    /// - Throws: `EndpointMuxError`.
    public init(
        name: String = "netbroker", socketPath: String, policy: BrokerPolicy, limits: BrokerLimits = BrokerLimits(),
        identity: DaemonIdentity? = nil, options: ConnectionOptions = ConnectionOptions(), logger: Logger? = nil
    ) throws(EndpointMuxError) {
        guard let group = MuxEventLoopGroup.shared else {
            throw .system(operation: "epoll_create1", path: "", errno: EMFILE)
        }
        let listener = try UnixSocket.bindListener(path: socketPath, serviceName: name)
        _ = fcntl(listener.rawValue, F_SETFL, fcntl(listener.rawValue, F_GETFL) | O_NONBLOCK)
        let proven: DaemonIdentity
        if let identity {
            proven = identity
        } else {
            do {
                proven = try DaemonIdentity.current(endpoint: IPCEndpoint(namespaceID: name, path: socketPath))
            } catch {
                unlink(socketPath)
                throw .identity(error)
            }
        }
        let mux = EndpointMux(identity: proven, servedProtocols: [PayloadProtocol](), acceptsControlMessages: true)
        let pool: WorkerPool
        do {
            pool = try WorkerPool(threadCount: 2)
        } catch {
            unlink(socketPath)
            throw .system(operation: "pthread_create", path: "", errno: EAGAIN)
        }
        self.socketPath = socketPath
        self.mux = mux
        self.state = BrokerState(
            loop: group.next(), mux: mux, options: options,
            machine: BrokerStateMachine(policy: policy, limits: limits), pool: pool,
            telemetry: ConnectionTelemetry(logger: logger, metricsDimensions: [("service", name)]))
        state.start(listener: listener.release())
    }

    /// Counts for tests and status: clients, listeners, waiting requests, connects in progress.
    package struct Statistics: Hashable, Sendable {
        /// Connected clients.
        public var clients: Int
        /// Listeners (kernel and pair).
        public var listeners: Int
        /// Requests waiting (accepts and connects).
        public var waiting: Int
        /// Kernel connects in progress.
        public var connecting: Int
    }

    /// The current counts (asked on the loop; waits for the answer).
    package func statistics() -> Statistics {
        let box = StatisticsBox()
        let done = DispatchSemaphoreLike()
        state.loop.execute { [state] in
            box.value = state.statistics()
            done.signal()
        }
        _ = done.wait(timeout: .seconds(10))
        return box.value
    }

    /// Stops serving: no more clients; connected clients get an
    /// `EpitaphStatus/unavailable` epitaph and are drained (within `drainTimeout`); every
    /// listener and connect in progress is closed and the socket removed. Idempotent;
    /// returns when everything is closed.
    public func stop(drainTimeout: Duration = .seconds(1)) {
        guard state.beginStop() else { return }
        state.shutdown(drainTimeout: drainTimeout)
        unlink(socketPath)
    }

    /// ``stop(drainTimeout:)`` without blocking the caller's thread: the stop runs on a
    /// thread of the broker's own while the caller suspends. Same contracts (idempotent;
    /// the drain is bounded by `drainTimeout`, and cancelling the caller does not shorten it).
    public func shutdown(drainTimeout: Duration = .seconds(1)) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            do {
                try OwnedThread.detached { [self] in
                    stop(drainTimeout: drainTimeout)
                    continuation.resume()
                }
            } catch {
                stop(drainTimeout: drainTimeout)  // no thread: the only blocking fallback
                continuation.resume()
            }
        }
    }

    deinit { stop() }
}

private final class StatisticsBox: @unchecked Sendable {
    var value = BrokerServer.Statistics(clients: 0, listeners: 0, waiting: 0, connecting: 0)
}

/// The broker's loop-thread state (touched only on `loop`'s thread, except the stop flag).
final class BrokerState: @unchecked Sendable {
    let loop: MuxEventLoop
    let mux: EndpointMux
    let options: ConnectionOptions
    let telemetry: ConnectionTelemetry
    private var machine: BrokerStateMachine

    private let lock = NSLockLike()
    private var stopped = false
    private let allClosed = DispatchSemaphoreLike()

    // Loop thread only.
    private var acceptor: BrokerAcceptor?
    private var clients: [BrokerClientID: LoopConnection] = [:]
    private var nextClient: UInt64 = 1
    private var kernelListeners: [BrokerListenerID: BrokerListenerSource] = [:]
    private var connecting: [BrokerConnectID: BrokerConnectSource] = [:]
    /// Clients with answers queued that need a flush.
    private var dirty: Set<BrokerClientID> = []
    /// The client whose events are being handled (its connection flushes by itself after).
    private var inCallback: BrokerClientID?
    private var running = false

    /// Opens kernel listeners (bind can be slow; see ``perform(_:now:)``).
    private let pool: WorkerPool

    init(
        loop: MuxEventLoop, mux: EndpointMux, options: ConnectionOptions, machine: BrokerStateMachine, pool: WorkerPool,
        telemetry: ConnectionTelemetry
    ) {
        self.pool = pool
        self.telemetry = telemetry
        self.loop = loop
        self.mux = mux
        self.options = options
        self.machine = machine
    }

    func start(listener fd: Int32) {
        let acceptor = BrokerAcceptor(fileDescriptor: fd, state: self)
        loop.execute { [self] in
            self.acceptor = acceptor
            loop.register(acceptor)
        }
    }

    func beginStop() -> Bool {
        lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
    }

    private var isStopping: Bool { lock.withLock { stopped } }

    func statistics() -> BrokerServer.Statistics {
        BrokerServer.Statistics(
            clients: machine.clientCount, listeners: machine.listenerCount,
            waiting: machine.waitingCount, connecting: machine.connectingCount)
    }

    var nextDeadline: ContinuousClock.Instant? { machine.nextDeadline }

    // MARK: - Clients

    /// A client connected (loop thread).
    func adopt(_ fd: Int32) {
        guard !isStopping else {
            telemetry.telemetry.acceptRefused(.shuttingDown, listener: "broker")
            _ = close(fd)
            return
        }
        let client = BrokerClientID(nextClient)
        nextClient += 1
        let uid = peerUID(fd) ?? UInt32.max
        let connection = LoopConnection(
            taking: fd, loop: loop, mux: mux, options: options,
            telemetry: telemetry
        ) { [self] _, events in
            handle(events, from: client)
        }
        clients[client] = connection
        machine.clientConnected(client, uid: uid)
        loop.register(connection)
    }

    private func handle(_ events: [ConnectionEvent], from client: BrokerClientID) {
        inCallback = client
        defer { inCallback = nil }
        let now = ContinuousClock.now
        for event in events {
            switch event {
            case let .control(received):
                machine.receive(received.message, from: client, now: now)
                run(now: now)
            // `received`'s fds (the protocol passes none to the broker) close with it.
            case .closed:
                clients[client] = nil
                dirty.remove(client)
                machine.clientDisconnected(client)
                run(now: now)
                if isStopping && clients.isEmpty { allClosed.signal() }
            case .payload, .legacyTakeover, .legacyMessage:
                continue  // no lane is served; legacy input is rejected by the engine
            }
        }
    }

    // MARK: - Sources' results

    /// The machine's deadline passed (from the acceptor's timer).
    func tick(now: ContinuousClock.Instant) {
        machine.tick(now: now)
        run(now: now)
    }

    /// Whether an accept waits on `listener`.
    func isAccepting(_ listener: BrokerListenerID) -> Bool { machine.isAccepting(listener) }

    /// A connection accepted on `listener`.
    func accepted(_ fd: Int32, on listener: BrokerListenerID, peer: BrokerEndpoint, now: ContinuousClock.Instant) {
        let local = BrokerSockets.address(of: fd, peer: false) ?? .unix(path: "")
        guard let (target, result) = machine.accepted(on: listener, local: local, peer: peer) else {
            _ = close(fd)
            return
        }
        reply(target, result, fd: fd)
        run(now: now)
    }

    func acceptFailed(on listener: BrokerListenerID, errno code: Int32, now: ContinuousClock.Instant) {
        machine.acceptFailed(on: listener, errno: code)
        run(now: now)
    }

    /// A listener was opened (or not) on the worker.
    private func listenFinished(
        _ id: BrokerListenerID, _ outcome: Result<(fd: Int32, bound: BrokerEndpoint), BrokerSockets.Failure>,
        unlinkPath: String?
    ) {
        switch outcome {
        case let .success((fd, bound)):
            if machine.listenOpened(id, endpoint: bound) {
                let source = BrokerListenerSource(fileDescriptor: fd, id: id, state: self, unlinkPath: unlinkPath)
                kernelListeners[id] = source
                loop.register(source)
            } else {
                _ = close(fd)  // its client left meanwhile
                if let unlinkPath { unlink(unlinkPath) }
            }
        case let .failure(failure):
            machine.listenFailed(id, errno: failure.errno)
        }
        run(now: .now)
    }

    /// A connect finished: success hands `fd` over; failure closes it (the source does).
    func connectFinished(_ id: BrokerConnectID, fd: Int32, errno code: Int32, now: ContinuousClock.Instant) {
        connecting[id] = nil
        if code != 0 {
            _ = machine.connectFinished(id, .failure(.system(errno: code)))
        } else {
            let local = BrokerSockets.address(of: fd, peer: false) ?? .unix(path: "")
            let peer = BrokerSockets.address(of: fd, peer: true) ?? .unix(path: "")
            if let (target, result) = machine.connectFinished(id, .success((local, peer))) {
                reply(target, result, fd: fd)
            } else {
                _ = close(fd)
            }
        }
        run(now: now)
    }

    // MARK: - Actions

    /// Carries out the machine's actions (and those they lead to), then flushes the answers
    /// of clients other than the one in its callback and re-arms the timer.
    private func run(now: ContinuousClock.Instant) {
        guard !running else { return }  // the outer call picks up what nested results queue
        running = true
        defer { running = false }
        while true {
            let actions = machine.takeActions()
            if actions.isEmpty { break }
            for action in actions { perform(action, now: now) }
        }
        for client in dirty where client != inCallback {
            guard let connection = clients[client] else { continue }
            connection.driver.flush(now: now)
            loop.update(connection)
        }
        dirty.removeAll(keepingCapacity: true)
        if let acceptor { loop.update(acceptor) }
    }

    private func perform(_ action: BrokerStateMachine.Action, now: ContinuousClock.Instant) {
        switch action {
        case let .reply(target, outcome):
            guard let connection = clients[target.client] else { return }
            connection.driver.send(.response(ControlResponse(id: target.id, outcome: outcome)))
            dirty.insert(target.client)

        case let .openListener(id, endpoint, backlog):
            // bind(2) of port 0 scans the kernel's port tables (a millisecond and more with
            // thousands of ports in TIME_WAIT): done on a worker so the loop keeps answering.
            let unlinkPath: String? = if case let .unix(path) = endpoint { path } else { nil }
            pool.submit { [self] in
                let outcome = Result { () throws(BrokerSockets.Failure) in
                    try BrokerSockets.listen(on: endpoint, backlog: backlog)
                }
                loop.execute { [self] in listenFinished(id, outcome, unlinkPath: unlinkPath) }
            }

        case let .closeListener(id):
            guard let source = kernelListeners.removeValue(forKey: id) else { return }
            source.finish()
            loop.update(source)

        case let .setAccepting(id, on):
            guard let source = kernelListeners[id] else { return }
            source.accepting = on
            loop.update(source)

        case let .startConnect(id, endpoint):
            do {
                let (fd, connected) = try BrokerSockets.startConnect(to: endpoint)
                if connected {
                    connectFinished(id, fd: fd, errno: 0, now: now)
                } else {
                    let source = BrokerConnectSource(fileDescriptor: fd, id: id, state: self)
                    connecting[id] = source
                    loop.register(source)
                }
            } catch {
                _ = machine.connectFinished(id, .failure(.system(errno: error.errno)))
            }

        case let .abortConnect(id):
            guard let source = connecting.removeValue(forKey: id) else { return }
            source.finish()
            loop.update(source)

        case let .pair(connector, acceptor, listener):
            do {
                let (acceptorEnd, connectorEnd) = try BrokerSockets.socketPair()
                reply(acceptor, .accepted(listener: listener, local: .pair, peer: .pair), fd: acceptorEnd)
                reply(connector, .connected(local: .pair, peer: .pair), fd: connectorEnd)
            } catch {
                let failure = BrokerError.system(errno: error.errno).errorObject
                perform(.reply(acceptor, .error(failure)), now: now)
                perform(.reply(connector, .error(failure)), now: now)
            }
        }
    }

    /// Sends `result` with `fd` to `target`; closes `fd` when the client is gone.
    private func reply(_ target: BrokerTarget, _ result: BrokerResult, fd: Int32) {
        var descriptors = FileDescriptorQueue()
        descriptors.append(OwnedFileDescriptor(taking: fd))
        guard let connection = clients[target.client] else { return }  // `descriptors` closes it
        connection.driver.send(
            .response(ControlResponse(id: target.id, result: result.jsonValue)),
            fileDescriptors: descriptors)
        dirty.insert(target.client)
    }

    // MARK: - Stop

    func shutdown(drainTimeout: Duration) {
        let done = DispatchSemaphoreLike()
        let hadClients = LockedFlag()
        telemetry.logger?.notice("broker stopping: UNAVAILABLE epitaph to every client")
        loop.execute { [self] in
            if let acceptor {
                acceptor.finish()
                loop.update(acceptor)
            }
            hadClients.set(!clients.isEmpty)
            for connection in clients.values {
                connection.driver.close(epitaph: Epitaph(status: .unavailable, reason: "broker shutting down"))
                loop.update(connection)
            }
            done.signal()
        }
        _ = done.wait(timeout: .seconds(10))
        if hadClients.value {
            _ = allClosed.wait(timeout: drainTimeout + .milliseconds(500))
        }
        pool.stop()  // listeners still being opened come back to the loop before the cleanup below
        // Whatever is left (clients that did not close in time) is closed on the loop.
        let finished = DispatchSemaphoreLike()
        loop.execute { [self] in
            for (client, connection) in clients {
                machine.clientDisconnected(client)
                connection.driver.close(epitaph: Epitaph(status: .unavailable, reason: "broker shutting down"))
                loop.update(connection)
            }
            run(now: .now)
            for source in kernelListeners.values {
                source.finish()
                loop.update(source)
            }
            kernelListeners = [:]
            for source in connecting.values {
                source.finish()
                loop.update(source)
            }
            connecting = [:]
            acceptor = nil  // the sources hold the state; nothing holds them now
            finished.signal()
        }
        _ = finished.wait(timeout: .seconds(10))
    }
}

/// The uid of the peer of a unix socket (`SO_PEERCRED`), `nil` when unknown.
private func peerUID(_ fd: Int32) -> UInt32? {
    var uid = uid_t()
    guard endpointmux_peer_uid(fd, &uid) == 0 else { return nil }
    return UInt32(uid)
}

/// A flag set on one thread and read on another.
private final class LockedFlag: @unchecked Sendable {
    private let lock = NSLockLike()
    private var stored = false
    func set(_ value: Bool) { lock.withLock { stored = value } }
    var value: Bool { lock.withLock { stored } }
}

/// The broker's own listening socket: accepts clients, backs off on `EMFILE`, and carries
/// the state machine's next deadline as its loop deadline (the broker's one timer).
final class BrokerAcceptor: LoopSource, @unchecked Sendable {
    let fileDescriptor: Int32
    private let state: BrokerState
    private var pausedUntil: ContinuousClock.Instant?
    private(set) var isFinished = false

    init(fileDescriptor: Int32, state: BrokerState) {
        self.fileDescriptor = fileDescriptor
        self.state = state
    }

    var loopEvents: UInt32 { isFinished || pausedUntil != nil ? 0 : 1 }

    var loopDeadline: MonotonicInstant? { acceptorDeadline.map(MonotonicInstant.init) }

    private var acceptorDeadline: ContinuousClock.Instant? {
        guard !isFinished else { return nil }
        switch (pausedUntil, state.nextDeadline) {
        case let (paused?, machine?): return min(paused, machine)
        case let (paused?, nil): return paused
        case let (nil, machine): return machine
        }
    }

    func handle(revents: UInt32, now: ContinuousClock.Instant, loop: MuxEventLoop) {
        if let pausedUntil, now >= pausedUntil { self.pausedUntil = nil }
        if revents & 1 != 0 || (revents == 0 && pausedUntil == nil) { acceptClients(now: now) }
        state.tick(now: now)
    }

    private func acceptClients(now: ContinuousClock.Instant) {
        for _ in 0..<64 {
            switch Acceptor.accept(fileDescriptor) {
            case let .accepted(fd): state.adopt(fd)
            case .outOfResources:
                pausedUntil = now + Acceptor.backoff
                state.telemetry.telemetry.acceptRefused(.outOfResources, errno: errno, listener: "broker")
                return
            case let .failed(code):
                state.telemetry.telemetry.acceptRefused(.failed, errno: code, listener: "broker")
                return
            case .empty:
                return
            }
        }
    }

    func finish() { isFinished = true }

    func release() { _ = close(fileDescriptor) }
}

/// A kernel listener a client asked for: in the epoll set only while an `accept` waits on
/// it, so connections stay in the kernel's queue (its backlog) until someone asks.
final class BrokerListenerSource: LoopSource, @unchecked Sendable {
    let fileDescriptor: Int32
    let id: BrokerListenerID
    private let state: BrokerState
    private let unlinkPath: String?
    var accepting = false
    private var pausedUntil: ContinuousClock.Instant?
    private(set) var isFinished = false

    init(fileDescriptor: Int32, id: BrokerListenerID, state: BrokerState, unlinkPath: String?) {
        self.fileDescriptor = fileDescriptor
        self.id = id
        self.state = state
        self.unlinkPath = unlinkPath
    }

    var loopEvents: UInt32 { !isFinished && accepting && pausedUntil == nil ? 1 : 0 }
    var loopDeadline: MonotonicInstant? { isFinished ? nil : pausedUntil.map(MonotonicInstant.init) }

    func handle(revents: UInt32, now: ContinuousClock.Instant, loop: MuxEventLoop) {
        if let pausedUntil {
            guard now >= pausedUntil else { return }
            self.pausedUntil = nil
        }
        var accepts = 0
        while !isFinished, accepts < 64, state.isAccepting(id) {
            accepts += 1
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let outcome = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Acceptor.accept(fileDescriptor, address: $0, length: &length)
                }
            }
            switch outcome {
            case let .accepted(fd):
                let peer = withUnsafeBytes(of: &storage) { raw -> BrokerEndpoint in
                    guard let base = raw.baseAddress else { return .unix(path: "") }
                    return BrokerSockets.endpoint(base, length: length)
                }
                state.accepted(fd, on: id, peer: peer, now: now)
            case .empty:
                return
            case .outOfResources:
                pausedUntil = now + Acceptor.backoff
                return
            case let .failed(code):
                state.acceptFailed(on: id, errno: code, now: now)
                return
            }
        }
    }

    func finish() { isFinished = true }

    func release() {
        _ = close(fileDescriptor)
        if let unlinkPath { unlink(unlinkPath) }
    }
}

/// A non-blocking connect in progress: waits for writability, then reads `SO_ERROR`.
final class BrokerConnectSource: LoopSource, @unchecked Sendable {
    let fileDescriptor: Int32
    let id: BrokerConnectID
    private let state: BrokerState
    private(set) var isFinished = false
    /// The fd went to a client: `release()` must not close it.
    private var handedOver = false

    init(fileDescriptor: Int32, id: BrokerConnectID, state: BrokerState) {
        self.fileDescriptor = fileDescriptor
        self.id = id
        self.state = state
    }

    var loopEvents: UInt32 { isFinished ? 0 : 4 }  // EPOLLOUT (EPOLLERR/EPOLLHUP always reported)
    var loopDeadline: MonotonicInstant? { nil }  // the machine's deadline covers it

    func handle(revents: UInt32, now: ContinuousClock.Instant, loop: MuxEventLoop) {
        guard !isFinished, revents != 0 else { return }
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fileDescriptor, SOL_SOCKET, SO_ERROR, &failure, &length) != 0 { failure = errno }
        if failure == 0 && BrokerSockets.address(of: fileDescriptor, peer: true) == nil {
            guard errno == ENOTCONN else { return finish(failure: errno, now: now, loop: loop) }
            return  // a stale readiness report: still connecting
        }
        finish(failure: failure, now: now, loop: loop)
    }

    private func finish(failure: Int32, now: ContinuousClock.Instant, loop: MuxEventLoop) {
        isFinished = true
        handedOver = failure == 0
        loop.update(self)  // forgotten by the loop before the fd travels (and may be closed)
        state.connectFinished(id, fd: fileDescriptor, errno: failure, now: now)
    }

    func finish() { isFinished = true }

    func release() {
        if !handedOver { _ = close(fileDescriptor) }
    }
}
