@_spi(Internals) public import EndpointMux
import EndpointMuxObservation
import Glibc
public import Logging

/// A ready-made service on a Unix socket it owns: binds like running-process's
/// ServiceServer, publishes the identity file, and serves every connection with the
/// connection engine on the shared epoll event loops (one per core; no thread or pipe per
/// connection, no busy-waiting).
///
/// Request handlers run on the connection's loop and must be quick (an echo, a table
/// lookup). Control handlers may block (they read and write the fds they are passed): they
/// run on a small pool of worker threads of the server's own, one message at a time per
/// connection, so a handler stuck on a pipe never stalls probes, frames or other
/// connections. Accept backs off for 100 ms when the process is out of fds (`EMFILE`,
/// `ENFILE`) instead of spinning, and resumes by itself.
///
/// Daemons that already own their sockets and loop use ``ConnectionDriver`` directly;
/// this type is the whole service for tools like `muxctl serve`.
public final class ServiceServer: Sendable {
    /// Answers one REQUEST frame on a served lane; `nil` sends no reply. Runs on an event
    /// loop: it must not block.
    public typealias RequestHandler = @Sendable (Frame) -> [UInt8]?
    /// Answers one JSON-FD control message; the result (if any) is sent back on the same
    /// connection with its fds. Fds of the received message that the handler does not
    /// take are closed after it returns. Runs on the server's worker threads, one message
    /// at a time per connection, so it may block on the fds it was passed.
    public typealias ControlHandler = @Sendable (ReceivedControlMessage, ConnectionContext) -> OutgoingControlMessage?

    /// The socket path served.
    public let socketPath: String
    /// The identity file written after the socket listens (removed on ``stop()``).
    package let identityPath: String?
    /// The mux (and the identity it proves).
    package let mux: EndpointMux

    private let state: ServiceState

    /// Binds `socketPath`, establishes this process's identity for `name`, writes
    /// `identityPath` (if any) atomically, and starts serving.
    /// - Parameter name: the service name (`[a-z0-9-]{1,64}`), the identity's namespace.
    /// - Parameter socketPath: the unix socket to bind (its directory is created).
    /// - Parameter identityPath: where to publish the identity file, or `nil` for none.
    /// - Parameter servedProtocols: the payload protocols (lanes) whose frames reach `handler`.
    /// - Parameter limits: frame and control-message limits.
    /// - Parameter options: per-connection behaviour (timeouts, output cap, legacy mode).
    /// - Parameter workerThreads: threads for control handlers (at least 1).
    /// - Parameter controlHandler: answers JSON-FD control messages; `nil` refuses them.
    /// - Parameter handler: answers REQUEST frames on the served lanes.
    /// - Parameter logger: where connection ends (with their reason), epitaphs and refused
    ///   accepts are logged (see ``ConnectionTelemetry``); `nil`, the default, logs nothing.
    ///   The server's metrics (dimension `service` = `name`) are created here, from the
    ///   `MetricsSystem` backend bootstrapped by then (none: no-ops).
    /// - Throws: `EndpointMuxError` (e.g. code `EndpointMuxError/Code/alreadyRunning`).
    public init(
        name: String,
        socketPath: String,
        identityPath: String?,
        servedProtocols: [PayloadProtocol],
        limits: MuxLimits = MuxLimits(),
        options: ConnectionOptions = ConnectionOptions(),
        logger: Logger? = nil,
        workerThreads: Int = 2,
        controlHandler: ControlHandler? = nil,
        handler: @escaping RequestHandler
    ) throws(EndpointMuxError) {
        guard let group = MuxEventLoopGroup.shared else {
            throw .system(operation: "epoll_create1", path: "", errno: EMFILE)
        }
        let listener = try UnixSocket.bindListener(path: socketPath, serviceName: name)
        _ = fcntl(listener.rawValue, F_SETFL, fcntl(listener.rawValue, F_GETFL) | O_NONBLOCK)
        let identity: DaemonIdentity
        do {
            identity = try DaemonIdentity.current(endpoint: IPCEndpoint(namespaceID: name, path: socketPath))
            if let identityPath { try IdentityFile.write(identity, to: identityPath) }
        } catch {
            unlink(socketPath)
            throw .identity(error)
        }
        let pool: WorkerPool?
        do {
            pool = controlHandler == nil ? nil : try WorkerPool(threadCount: workerThreads)
        } catch {
            if let identityPath { IdentityFile.remove(at: identityPath) }
            unlink(socketPath)
            throw .system(operation: "pthread_create", path: "", errno: EAGAIN)
        }
        let mux = EndpointMux(
            identity: identity, servedProtocols: servedProtocols, limits: limits,
            acceptsControlMessages: controlHandler != nil)
        self.socketPath = socketPath
        self.identityPath = identityPath
        self.mux = mux
        let telemetry = ConnectionTelemetry(logger: logger, metricsDimensions: [("service", name)])
        self.state = ServiceState(
            group: group, mux: mux, options: options, pool: pool, handler: handler,
            controlHandler: controlHandler, telemetry: telemetry)
        state.start(listener: listener.release(), name: socketPath)
    }

    /// Stops serving: no more connections are accepted, connected peers get an
    /// `EpitaphStatus/unavailable` epitaph and are drained (within `drainTimeout`),
    /// then the identity file and the socket are removed (in that order, as the
    /// reference). Idempotent; returns when every connection is closed.
    public func stop(drainTimeout: Duration = .seconds(1)) {
        guard state.beginStop() else { return }
        state.closeEverything(drainTimeout: drainTimeout)
        if let identityPath { IdentityFile.remove(at: identityPath) }
        unlink(socketPath)
    }

    /// Stops serving as ``stop(drainTimeout:)`` does — no more connections are accepted,
    /// every connected peer gets an `EpitaphStatus/unavailable` epitaph and is drained,
    /// then the identity file and the socket are removed — but without blocking a thread:
    /// it suspends until the last connection closed (or `drainTimeout` plus 500 ms passed;
    /// connections still open then are left to close on their loops) and the control
    /// handlers' worker threads ended (joined on a thread of the server's own).
    ///
    /// Contracts: idempotent and safe to call with ``stop(drainTimeout:)`` (only the
    /// first call of either stops; later calls return at once, possibly before the first
    /// finished). The drain completes even if the calling task is cancelled: cancellation
    /// does not shorten it (the deadline does).
    public func shutdown(drainTimeout: Duration = .seconds(1)) async {
        guard state.beginStop() else { return }
        await state.closeEverything(drainTimeout: drainTimeout)
        if let identityPath { IdentityFile.remove(at: identityPath) }
        unlink(socketPath)
    }

    deinit { stop() }
}

/// What the loops share about one server; loop-thread state lives in its sources.
private final class ServiceState: @unchecked Sendable {
    let group: MuxEventLoopGroup
    let mux: EndpointMux
    let options: ConnectionOptions
    let pool: WorkerPool?
    let handler: ServiceServer.RequestHandler
    let controlHandler: ServiceServer.ControlHandler?
    let telemetry: ConnectionTelemetry
    private let lock = NSLockLike()
    private var stopped = false
    private var listener: ServiceListener?
    private var connections: [ObjectIdentifier: LoopConnection] = [:]
    private let allClosed = DispatchSemaphoreLike()
    /// Called (once) when the last connection closed after the stop began.
    private var allClosedWaiters: [@Sendable () -> Void] = []

    init(
        group: MuxEventLoopGroup, mux: EndpointMux, options: ConnectionOptions, pool: WorkerPool?,
        handler: @escaping ServiceServer.RequestHandler, controlHandler: ServiceServer.ControlHandler?,
        telemetry: ConnectionTelemetry
    ) {
        self.group = group
        self.mux = mux
        self.options = options
        self.pool = pool
        self.handler = handler
        self.controlHandler = controlHandler
        self.telemetry = telemetry
    }

    func start(listener fd: Int32, name: String) {
        let loop = group.next()
        let listener = ServiceListener(fileDescriptor: fd, name: name, telemetry: telemetry.telemetry) {
            [self] accepted in
            adopt(accepted)
        }
        listener.loop = loop
        lock.withLock { self.listener = listener }
        loop.execute { loop.register(listener) }
    }

    func beginStop() -> Bool {
        lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
    }

    /// Takes an accepted fd: serves it on the next loop.
    private func adopt(_ fd: Int32) {
        let loop = group.next()
        loop.execute { [self] in
            let connection = LoopConnection(
                taking: fd, loop: loop, mux: mux, options: options,
                telemetry: telemetry
            ) { [self] connection, events in
                handle(events, on: connection)
            }
            let refused = lock.withLock { () -> Bool in
                if stopped { return true }
                connections[ObjectIdentifier(connection)] = connection
                return false
            }
            loop.register(connection)
            if refused {
                telemetry.telemetry.acceptRefused(.shuttingDown, listener: "fd \(fd)")
                connection.withDriver {
                    $0.close(epitaph: Epitaph(status: .unavailable, reason: "server shutting down"))
                }
            }
        }
    }

    /// Per-connection state for control work (loop thread only).
    private final class ControlWork: @unchecked Sendable {
        var queue: [ReceivedControlMessage] = []
        var busy = false
        let context = ConnectionContext()
    }
    private var controlWork: [ObjectIdentifier: ControlWork] = [:]  // loop threads; guarded by lock

    private func handle(_ events: consuming [ConnectionEvent], on connection: LoopConnection) {
        func serve(_ event: consuming ConnectionEvent) {
            switch consume event {
            case let .payload(frame):
                // The reference serves REQUESTs and ignores other kinds on the lane.
                guard frame.kind == .request, let reply = handler(frame) else { return }
                // A reply over the cap is dropped (the connection stays usable), as the reference does.
                try? connection.driver.send(frame.response(payload: reply))
            case let .control(received):
                guard controlHandler != nil else { return }
                connection.driver.workStarted()
                let work = lock.withLock { () -> ControlWork in
                    let key = ObjectIdentifier(connection)
                    if let work = controlWork[key] { return work }
                    let work = ControlWork()
                    controlWork[key] = work
                    return work
                }
                work.queue.append(received)
                startControlWork(work, on: connection)
            case .legacyTakeover, .legacyMessage:
                return  // not produced in the service's .reject legacy mode
            case .closed:
                let key = ObjectIdentifier(connection)
                let (last, waiters) = lock.withLock { () -> (Bool, [@Sendable () -> Void]) in
                    connections[key] = nil
                    controlWork[key] = nil
                    guard stopped && connections.isEmpty else { return (false, []) }
                    defer { allClosedWaiters = [] }
                    return (true, allClosedWaiters)
                }
                if last {
                    allClosed.signal()
                    for waiter in waiters { waiter() }
                }
            }
        }
        var events = consume events
        events.drain(placeholder: .legacyMessage([]), serve)  // moved out, not copied
    }

    /// Runs the next queued control message on the pool (one at a time per connection).
    private func startControlWork(_ work: ControlWork, on connection: LoopConnection) {
        guard !work.busy, !work.queue.isEmpty, let pool, let controlHandler else { return }
        work.busy = true
        let received = work.queue.removeFirst()
        pool.submit { [self] in
            let reply = controlHandler(received, work.context)
            connection.withDriver { [self] driver in
                if let reply { driver.send(reply) }
                driver.workFinished(now: .now)
                work.busy = false
                startControlWork(work, on: connection)
            }
        }
    }

    func closeEverything(drainTimeout: Duration) {
        if !closeConnections().isEmpty {
            _ = allClosed.wait(timeout: drainTimeout + .milliseconds(500))
        }
        pool?.stop()
    }

    /// ``closeEverything(drainTimeout:)`` without blocking: suspends until the last
    /// connection closed or the deadline, then until the worker threads ended.
    func closeEverything(drainTimeout: Duration) async {
        if !closeConnections().isEmpty {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let once = ResumeOnce(continuation)
                let done = lock.withLock { () -> Bool in
                    if connections.isEmpty { return true }
                    allClosedWaiters.append { once.resume() }
                    return false
                }
                if done {
                    once.resume()
                } else {
                    // Not inheriting the caller's cancellation: the drain runs to its deadline.
                    once.timer = Task {
                        try? await Task.sleep(for: drainTimeout + .milliseconds(500))
                        once.resume()
                    }
                }
            }
        }
        guard let pool else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            do {
                try OwnedThread.detached {
                    pool.stop()
                    continuation.resume()
                }
            } catch {
                pool.stop()  // no thread to join on: the only blocking fallback
                continuation.resume()
            }
        }
    }

    /// Stops accepting and sends every connection an `UNAVAILABLE` epitaph; returns them.
    private func closeConnections() -> [LoopConnection] {
        let (listener, open) = lock.withLock { (self.listener, Array(connections.values)) }
        if let listener, let loop = listener.loop {
            loop.execute {
                listener.finish()
                loop.update(listener)
            }
        }
        telemetry.logger?.notice(
            "service stopping: UNAVAILABLE epitaph to every connection",
            metadata: ["endpointmux.connections": "\(open.count)"])
        for connection in open {
            connection.withDriver { $0.close(epitaph: Epitaph(status: .unavailable, reason: "server shutting down")) }
        }
        return open
    }
}

/// A listening socket on a loop: accepts while readable; out of fds, it pauses for
/// ``backoff`` (off the epoll set, a deadline to resume) instead of spinning.
final class ServiceListener: LoopSource, @unchecked Sendable {
    let fileDescriptor: Int32
    var loop: MuxEventLoop?
    private let onAccept: (Int32) -> Void
    private var pausedUntil: ContinuousClock.Instant?
    private(set) var isFinished = false
    private let name: String
    private let telemetry: MuxTelemetry?

    init(fileDescriptor: Int32, name: String = "", telemetry: MuxTelemetry? = nil, onAccept: @escaping (Int32) -> Void)
    {
        self.fileDescriptor = fileDescriptor
        self.name = name
        self.telemetry = telemetry
        self.onAccept = onAccept
    }

    var loopEvents: UInt32 { isFinished || pausedUntil != nil ? 0 : 1 }
    var loopDeadline: MonotonicInstant? { isFinished ? nil : pausedUntil.map(MonotonicInstant.init) }

    func handle(revents: UInt32, now: ContinuousClock.Instant, loop: MuxEventLoop) {
        if let pausedUntil {
            guard now >= pausedUntil else { return }
            self.pausedUntil = nil
        }
        for _ in 0..<256 {
            switch Acceptor.accept(fileDescriptor) {
            case let .accepted(fd): onAccept(fd)
            case .outOfResources:
                pausedUntil = now + Acceptor.backoff
                telemetry?.acceptRefused(.outOfResources, errno: errno, listener: name)
                return
            case let .failed(code):
                telemetry?.acceptRefused(.failed, errno: code, listener: name)
                return
            case .empty:
                return
            }
        }
    }

    func finish() { isFinished = true }

    func release() { _ = close(fileDescriptor) }
}

/// Resumes a continuation once, whichever comes first (the last close or the deadline),
/// and then cancels the deadline's task.
private final class ResumeOnce: @unchecked Sendable {
    private let lock = NSLockLike()
    private var continuation: CheckedContinuation<Void, Never>?
    private var timerTask: Task<Void, Never>?

    init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = continuation }

    /// The deadline's task (cancelled at once if already resumed).
    var timer: Task<Void, Never>? {
        get { lock.withLock { timerTask } }
        set {
            let resumed = lock.withLock { () -> Bool in
                timerTask = newValue
                return continuation == nil
            }
            if resumed { newValue?.cancel() }
        }
    }

    func resume() {
        let (continuation, timer) = lock.withLock { () -> (CheckedContinuation<Void, Never>?, Task<Void, Never>?) in
            defer { self.continuation = nil }
            return (self.continuation, timerTask)
        }
        guard let continuation else { return }
        timer?.cancel()
        continuation.resume()
    }
}

/// A counting semaphore with a timeout (pthread condition variable).
final class DispatchSemaphoreLike: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var count = 0

    init() {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    func signal() {
        pthread_mutex_lock(mutex)
        count += 1
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Waits for a signal; false when `timeout` passed first.
    func wait(timeout: Duration) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (seconds, attoseconds) = timeout.components
        var deadline = timespec(
            tv_sec: now.tv_sec + Int(seconds), tv_nsec: now.tv_nsec + Int(attoseconds / 1_000_000_000))
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while count == 0 {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { return false }
        }
        count -= 1
        return true
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }
}
