public import EndpointMux
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A ready-made service on a Unix socket it owns: binds like running-process's
/// ServiceServer, publishes the identity file, and serves every connection through a
/// ``ConnectionDriver`` on one event-loop thread of its own (`poll(2)`, no busy-waiting).
///
/// Daemons that already own their sockets and loop use ``ConnectionDriver`` directly;
/// this type is the whole service for tools like `muxctl serve`.
public final class ServiceServer: Sendable {
    /// Answers one REQUEST frame on a served lane; `nil` sends no reply. Runs on the
    /// event-loop thread, so it should be quick.
    public typealias RequestHandler = @Sendable (Frame) -> [UInt8]?
    /// Answers one JSON-FD control message; the result (if any) is sent back on the same
    /// connection with its fds. Fds of the received message that the handler does not
    /// take are closed after it returns. Runs on the event-loop thread.
    public typealias ControlHandler = @Sendable (ReceivedControlMessage, ConnectionContext) -> OutgoingControlMessage?

    /// The socket path served.
    public let socketPath: String
    /// The identity file written after the socket listens (removed on ``stop()``).
    public let identityPath: String?
    /// The mux (and the identity it proves).
    public let mux: EndpointMux

    private let wakeWriter: Int32
    private let wakeReader: Int32
    private let thread: OwnedThread
    private let stopped = NSLockLike()
    nonisolated(unsafe) private var isStopped = false

    /// Binds `socketPath`, establishes this process's identity for `namespaceID`, writes
    /// `identityPath` (if any) atomically, and starts serving.
    /// - Throws: ``ServiceError`` (e.g. ``ServiceError/alreadyRunning(name:path:)``).
    public init(
        name: String,
        socketPath: String,
        identityPath: String?,
        servedProtocols: [PayloadProtocol],
        limits: MuxLimits = MuxLimits(),
        options: ConnectionOptions = ConnectionOptions(),
        controlHandler: ControlHandler? = nil,
        handler: @escaping RequestHandler
    ) throws(ServiceError) {
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
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            if let identityPath { IdentityFile.remove(at: identityPath) }
            unlink(socketPath)
            throw .system(operation: "pipe", path: "", errno: errno)
        }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let mux = EndpointMux(identity: identity, servedProtocols: servedProtocols, limits: limits,
                              acceptsControlMessages: controlHandler != nil)
        self.socketPath = socketPath
        self.identityPath = identityPath
        self.mux = mux
        self.wakeWriter = pipeFDs[1]
        self.wakeReader = pipeFDs[0]
        let loop = ServiceEventLoop(listener: listener.release(), wakeReader: pipeFDs[0], mux: mux,
                                    options: options, handler: handler, controlHandler: controlHandler)
        do {
            self.thread = try OwnedThread { loop.run() }
        } catch {
            loop.closeAll()
            close(pipeFDs[0])
            close(pipeFDs[1])
            if let identityPath { IdentityFile.remove(at: identityPath) }
            unlink(socketPath)
            throw .system(operation: "pthread_create", path: "", errno: EAGAIN)
        }
    }

    /// Stops serving: connected peers get an ``EpitaphStatus/unavailable`` epitaph, then
    /// the identity file and the socket are removed (in that order, as the reference).
    /// Idempotent; returns when the event loop has ended.
    public func stop() {
        let first = stopped.withLock { () -> Bool in
            defer { isStopped = true }
            return !isStopped
        }
        guard first else { thread.join(); return }
        var byte: UInt8 = 1
        _ = write(wakeWriter, &byte, 1)
        thread.join()
        // Both ends stay open until the loop is gone, so this write can never SIGPIPE.
        close(wakeWriter)
        close(wakeReader)
        if let identityPath { IdentityFile.remove(at: identityPath) }
        unlink(socketPath)
    }

    deinit { stop() }
}

/// The state only the event-loop thread touches.
private final class ServiceEventLoop: @unchecked Sendable {
    let listener: Int32
    let wakeReader: Int32
    let mux: EndpointMux
    let options: ConnectionOptions
    let handler: ServiceServer.RequestHandler
    let controlHandler: ServiceServer.ControlHandler?
    var connections: [Int32: ConnectionDriver] = [:]
    var contexts: [Int32: ConnectionContext] = [:]

    init(listener: Int32, wakeReader: Int32, mux: EndpointMux, options: ConnectionOptions,
         handler: @escaping ServiceServer.RequestHandler, controlHandler: ServiceServer.ControlHandler?) {
        self.listener = listener
        self.wakeReader = wakeReader
        self.mux = mux
        self.options = options
        self.handler = handler
        self.controlHandler = controlHandler
    }

    func run() {
        while true {
            var pollFDs = [pollfd(fd: wakeReader, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            var order: [Int32] = []
            var deadline: ContinuousClock.Instant?
            for (fd, driver) in connections {
                var events: Int16 = 0
                if driver.wantsReadable { events |= Int16(POLLIN) }
                if driver.wantsWritable { events |= Int16(POLLOUT) }
                pollFDs.append(pollfd(fd: fd, events: events, revents: 0))
                order.append(fd)
                if let next = driver.nextDeadline { deadline = min(deadline ?? next, next) }
            }
            var timeout: Int32 = -1
            if let deadline {
                let remaining = ContinuousClock.now.duration(to: deadline)
                let milliseconds = remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
                timeout = Int32(clamping: max(0, milliseconds + 1))
            }
            let ready = poll(&pollFDs, nfds_t(pollFDs.count), timeout)
            if ready < 0 && errno != EINTR { break }
            if pollFDs[0].revents != 0 { break }
            if pollFDs[1].revents & Int16(POLLIN) != 0 { acceptAll() }
            let now = ContinuousClock.now
            for (index, fd) in order.enumerated() {
                guard let driver = connections[fd] else { continue }
                let revents = pollFDs[index + 2].revents
                var events: [ConnectionEvent] = []
                if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { events += driver.readable(now: now) }
                if revents & Int16(POLLOUT) != 0 { events += driver.writable(now: now) }
                if let next = driver.nextDeadline, next <= now { events += driver.tick(now: now) }
                handle(events, driver: driver)
            }
        }
        shutdownAll()
    }

    private func acceptAll() {
        while true {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            connections[fd] = ConnectionDriver(borrowing: fd, mux: mux, options: options)
            contexts[fd] = ConnectionContext()
        }
    }

    private func handle(_ events: [ConnectionEvent], driver: ConnectionDriver) {
        for event in events {
            switch event {
            case let .payload(frame):
                // The reference serves REQUESTs and ignores other kinds on the lane.
                guard frame.kind == .request, let reply = handler(frame) else { continue }
                // A reply over the cap is dropped (the connection stays usable), as the reference does.
                try? driver.send(frame.response(payload: reply))
            case let .control(received):
                guard let controlHandler, let context = contexts[driver.fileDescriptor] else { continue }
                if let reply = controlHandler(received, context) {
                    driver.send(reply.message, fileDescriptors: reply.takeFileDescriptors())
                }
            case .legacyTakeover, .legacyMessage:
                continue  // not produced in the service's .reject legacy mode
            case .closed:
                connections[driver.fileDescriptor] = nil
                contexts[driver.fileDescriptor] = nil
                close(driver.fileDescriptor)
            }
        }
    }

    private func shutdownAll() {
        for (fd, driver) in connections {
            driver.close(epitaph: Epitaph(status: .unavailable, reason: "server shutting down"))
            close(fd)
        }
        connections = [:]
        closeAll()
    }

    func closeAll() {
        close(listener)
    }
}
