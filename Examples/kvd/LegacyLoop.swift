import EndpointMux
import LegacyAdapters
import Glibc

/// kvd's event loop, as it was before EndpointMux: it owns the listening socket and every
/// connection, waits with `poll(2)`, and speaks the line protocol. The retrofit changes
/// only `Connection`: with a mux, bytes go through a `ConnectionDriver` (per-message
/// legacy mode) instead of straight to the line parser, and the loop polls on each
/// driver's interest (events and deadline) and makes its one call.
///
/// Nothing here blocks: `dumpTo` / `loadFrom` do their fd I/O as the passed fd becomes
/// ready (it sits in the same poll set), and when `accept` runs out of fds the listener
/// leaves the poll set for ``acceptBackoff`` instead of spinning.
final class KVLoop {
    let listener: Int32
    let store: KVStore
    let mux: EndpointMux?
    let options: ConnectionOptions
    private var connections: [Int32: Connection] = [:]
    private let wakeReader: Int32
    /// While `accept` fails for want of fds, the listener stays out of the poll set until then.
    private var acceptPausedUntil: ContinuousClock.Instant?

    /// How long the listener rests after `EMFILE` / `ENFILE` (and `ENOBUFS` / `ENOMEM`).
    static let acceptBackoff: Duration = .milliseconds(100)

    init(listener: Int32, store: KVStore, mux: EndpointMux?, options: ConnectionOptions, wakeReader: Int32) {
        self.listener = listener
        self.store = store
        self.mux = mux
        self.options = options
        self.wakeReader = wakeReader
    }

    /// What each poll entry after the wake-up pipe (and the listener, when polled) is.
    private enum Slot {
        case listener
        case connection(Int32)
        /// The fd of a `dumpTo` / `loadFrom` running for this connection.
        case work(Int32)
    }

    func run() {
        var fds: [pollfd] = []
        var slots: [Slot] = []
        while true {
            var now = ContinuousClock.now
            fds.removeAll(keepingCapacity: true)
            slots.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeReader, events: Int16(POLLIN), revents: 0))
            var deadline: ContinuousClock.Instant?
            func earliest(_ candidate: ContinuousClock.Instant) { deadline = min(deadline ?? candidate, candidate) }
            if let until = acceptPausedUntil, until > now {
                earliest(until)
            } else {
                acceptPausedUntil = nil
                fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
                slots.append(.listener)
            }
            for (fd, connection) in connections {
                let wanted = connection.pollRequest(now: now)
                fds.append(pollfd(fd: fd, events: wanted.events, revents: 0))
                slots.append(.connection(fd))
                if let next = wanted.deadline { earliest(next) }
                if let work = connection.work {
                    fds.append(pollfd(fd: work.fileDescriptor, events: work.pollEvents, revents: 0))
                    slots.append(.work(fd))
                }
            }
            let timeout = ConnectionInterest(read: false, write: false, deadline: deadline).pollTimeout(now: now)
            if poll(&fds, nfds_t(fds.count), timeout) < 0 {
                if errno == EINTR { continue }
                perror("kvd: poll")
                break
            }
            if fds[0].revents != 0 { break }
            now = .now
            for (index, slot) in slots.enumerated() {
                let revents = fds[index + 1].revents
                switch slot {
                case .listener:
                    if revents != 0 { acceptAll(now: now) }
                case let .work(fd):
                    guard revents != 0, let connection = connections[fd] else { continue }
                    if !connection.serviceWork(revents: revents, now: now) { remove(fd) }
                case let .connection(fd):
                    // Called on readiness or when its deadline passed (`revents` 0 then).
                    guard let connection = connections[fd] else { continue }
                    if !connection.service(revents: revents, now: now) { remove(fd) }
                }
            }
        }
        for fd in Array(connections.keys) { remove(fd) }
    }

    private func remove(_ fd: Int32) {
        guard let connection = connections.removeValue(forKey: fd) else { return }
        connection.cancelWork()
        close(fd)
    }

    private func acceptAll(now: ContinuousClock.Instant) {
        while true {
            let fd = accept(listener, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                connections[fd] = Connection(fd: fd, store: store, mux: mux, options: options, now: now)
                continue
            }
            switch errno {
            case EINTR, ECONNABORTED, EPROTO:
                continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of fds: leave the listener alone for a while (waiting connections
                // stay in the backlog) rather than wake up at once for the same error.
                acceptPausedUntil = now + Self.acceptBackoff
                return
            default:
                return  // EAGAIN: nothing more to accept
            }
        }
    }
}

/// One client connection.
final class Connection {
    let fd: Int32
    let store: KVStore
    /// Without a mux: the original code path.
    private var pending: [UInt8] = []
    private var unsent: [UInt8] = []
    /// The original path read the peer's end of input (or gave up on it): answer what was
    /// read, then close.
    private var inputEnded = false
    /// With a mux: the retrofit.
    private let driver: ConnectionDriver?
    /// A control request doing fd I/O; events that came after it wait in `backlog` so
    /// answers keep their order.
    private(set) var work: KVWork?
    private var backlog: [ConnectionEvent] = []

    init(fd: Int32, store: KVStore, mux: EndpointMux?, options: ConnectionOptions, now: ContinuousClock.Instant) {
        self.fd = fd
        self.store = store
        self.driver = mux.map { ConnectionDriver(borrowing: fd, mux: $0, options: options, now: now) }
    }

    /// The per-message legacy framing kvd gives the driver.
    static func options(idleTimeout: Duration?, partialMessageTimeout: Duration?) -> ConnectionOptions {
        ConnectionOptions(
            legacyMode: .perMessage({ bytes in
                if let n = KVLineProtocol.lineLength(bytes) { return .complete(n) }
                return bytes.count > KVLineProtocol.maxLineBytes ? .invalid(reason: "line too long") : .needMoreBytes
            }), idleTimeout: idleTimeout, partialMessageTimeout: partialMessageTimeout)
    }

    /// The poll events to wait for and the latest instant to call ``service(revents:now:)``.
    func pollRequest(now: ContinuousClock.Instant) -> (events: Int16, deadline: ContinuousClock.Instant?) {
        guard let driver else {
            return ((inputEnded ? 0 : Int16(POLLIN)) | (unsent.isEmpty ? 0 : Int16(POLLOUT)), nil)
        }
        let interest = driver.interest
        guard work != nil else { return (interest.pollEvents, interest.deadline) }
        // While a request works, the driver is not asked to read or decide anything (its
        // answer must go first, and a deferred end must wait for it): only queued output
        // is flushed, and a hang-up (always reported) cancels the work.
        if let deadline = interest.deadline, deadline <= now { return (0, nil) }
        return (interest.write ? Int16(POLLOUT) : 0, nil)
    }

    /// Handles readiness or a passed deadline; false when the connection is over.
    func service(revents: Int16, now: ContinuousClock.Instant) -> Bool {
        guard let driver else { return serviceWithoutMux(revents: revents) }
        if work != nil {
            if revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
                cancelWork()  // the peer is gone: nobody to answer
                return pump(driver, revents: revents, now: now)
            }
            if revents & Int16(POLLOUT) != 0, !(driver.interest.deadline.map { $0 <= now } ?? false) {
                return pump(driver, revents: Int16(POLLOUT), now: now)
            }
            return true
        }
        if revents == 0, !(driver.interest.deadline.map { $0 <= now } ?? false) { return true }
        return pump(driver, revents: revents, now: now)
    }

    /// Readiness of the running request's fd; false when the connection is over.
    func serviceWork(revents: Int16, now: ContinuousClock.Instant) -> Bool {
        guard let driver, let running = work, let reply = running.step(revents: revents, store: store) else {
            return true
        }
        work = nil
        driver.send(reply)
        let waiting = backlog
        backlog = []
        guard answer(waiting, driver: driver) else { return false }
        return pump(driver, revents: 0, now: now)
    }

    /// Abandons the running request (its fd is closed; no answer).
    func cancelWork() {
        work?.cancel()
        work = nil
        backlog = []
    }

    // MARK: The retrofit: poll on the driver's interest, make its one call, answer the events.

    private func pump(_ driver: ConnectionDriver, revents: Int16, now: ContinuousClock.Instant) -> Bool {
        var open = true
        driver.handle(revents: revents, now: now) { event in
            if open { open = answer(event, driver: driver) }
        }
        return open && !driver.isClosed
    }

    private func answer(_ events: [ConnectionEvent], driver: ConnectionDriver) -> Bool {
        for event in events where !answer(event, driver: driver) { return false }
        return true
    }

    /// Answers one event; false when the connection is over.
    private func answer(_ event: ConnectionEvent, driver: ConnectionDriver) -> Bool {
        if case .closed = event {
            cancelWork()
            return false
        }
        if work != nil {
            backlog.append(event)
            return true
        }
        switch event {
        case let .legacyMessage(line):
            driver.send(bytes: Array(store.execute(String(decoding: line.dropLast(), as: UTF8.self)).utf8) + [0x0A])
        case let .payload(frame) where frame.kind == .request:
            let reply = store.execute(String(decoding: frame.payload, as: UTF8.self))
            try? driver.send(frame.response(payload: Array(reply.utf8)))
        case let .control(received):
            switch KVControl.start(received, store: store) {
            case let .reply(reply)?: driver.send(reply)
            case let .work(started)?: work = started
            case nil: break
            }
        case .payload, .legacyTakeover, .closed:
            break
        }
        return true
    }

    // MARK: The original code path (kvd before EndpointMux).

    private func serviceWithoutMux(revents: Int16) -> Bool {
        if !inputEnded, revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 { pending += chunk[..<n]; continue }
                if n == 0 { inputEnded = true; break }
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                return false
            }
            while let length = pending.withUnsafeBytes({ KVLineProtocol.lineLength($0) }) {
                let line = String(decoding: pending[..<(length - 1)], as: UTF8.self)
                pending.removeFirst(length)
                unsent += Array(store.execute(line).utf8) + [0x0A]
            }
            // A line too long ends the connection, after the answers to the lines before it.
            if pending.count > KVLineProtocol.maxLineBytes { inputEnded = true }
            if inputEnded { pending = [] }  // an unfinished last line gets no answer
        }
        guard flush() else { return false }
        // Every complete line answered and written: close (the peer reads EOF).
        return !(inputEnded && unsent.isEmpty)
    }

    /// Writes what it can; false when the peer can no longer be written to.
    private func flush() -> Bool {
        while !unsent.isEmpty {
            let n = unsent.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { unsent.removeFirst(n); continue }
            if n < 0 && errno == EINTR { continue }
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
        }
        return true
    }
}

/// kvd's control methods: `dumpTo` (one fd: every pair as `key=value\n`) and `loadFrom`
/// (one fd: `key=value` lines, read to EOF).
enum KVControl {
    enum Start {
        /// Answer at once.
        case reply(OutgoingControlMessage)
        /// Answer when this fd I/O is done.
        case work(KVWork)
    }

    /// Starts a request; `nil` for messages that get no answer.
    static func start(_ received: ReceivedControlMessage, store: KVStore) -> Start? {
        guard case let .request(request) = received.message else { return nil }
        var descriptors = received.takeFileDescriptors()
        guard request.method == "dumpTo" || request.method == "loadFrom" else {
            return .reply(OutgoingControlMessage(replyingTo: request, error: .methodNotFound()))
        }
        guard descriptors.count == 1, let fd = descriptors.popFirst() else {
            return .reply(
                OutgoingControlMessage(
                    replyingTo: request,
                    error: JSONRPCErrorObject(
                        code: JSONRPCErrorObject.invalidParamsCode, message: "\(request.method) takes exactly one fd")))
        }
        if request.method == "dumpTo" {
            return .work(
                KVWork(
                    request: request, fileDescriptor: fd.release(),
                    job: .dump(Array(store.dump().utf8), count: store.pairs.count)))
        }
        return .work(KVWork(request: request, fileDescriptor: fd.release(), job: .load))
    }
}

/// The fd I/O of one `dumpTo` / `loadFrom`, done a step at a time as its fd becomes ready,
/// without ever waiting (and without changing the flags of the caller's file description).
final class KVWork {
    enum Job {
        case dump([UInt8], count: Int)
        case load
    }

    let request: ControlRequest
    /// Owned; closed when the work ends.
    private(set) var fileDescriptor: Int32
    private let job: Job
    private var written = 0
    private var text: [UInt8] = []
    /// What the fd is: sockets take `MSG_DONTWAIT`; a pipe after `POLLOUT` takes `PIPE_BUF`
    /// bytes without blocking; a regular file never waits for readiness.
    private let kind: mode_t

    /// `loadFrom` reads at most this much.
    static let maxLoadByteCount = 16 * 1024 * 1024

    init(request: ControlRequest, fileDescriptor: Int32, job: Job) {
        self.request = request
        self.fileDescriptor = fileDescriptor
        self.job = job
        var status = stat()
        kind = fstat(fileDescriptor, &status) == 0 ? status.st_mode & S_IFMT : 0
    }

    var pollEvents: Int16 {
        if case .dump = job { return Int16(POLLOUT) }
        return Int16(POLLIN)
    }

    /// One step after readiness; the answer when the work is done.
    func step(revents: Int16, store: KVStore) -> OutgoingControlMessage? {
        switch job {
        case let .dump(bytes, count):
            guard written < bytes.count else { return finish(result: count) }
            let limit = kind == S_IFREG ? 65536 : Int(PIPE_BUF)
            let n = bytes.withUnsafeBytes { raw -> Int in
                let rest = UnsafeRawBufferPointer(rebasing: raw[written..<min(bytes.count, written + limit)])
                if kind == S_IFSOCK {
                    return send(fileDescriptor, rest.baseAddress, rest.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                }
                return write(fileDescriptor, rest.baseAddress, rest.count)
            }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { return nil }
                return finish(error: "write failed: errno \(errno)")
            }
            written += n
            return written < bytes.count ? nil : finish(result: count)
        case .load:
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { raw -> Int in
                if kind == S_IFSOCK { return recv(fileDescriptor, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT)) }
                return read(fileDescriptor, raw.baseAddress, raw.count)
            }
            if n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
            if n > 0 {
                text += chunk[..<n]
                if text.count < Self.maxLoadByteCount { return nil }
            }
            // EOF (or a read error, or the cap): load what arrived, as kvd always did.
            return finish(result: store.load(String(decoding: text, as: UTF8.self)))
        }
    }

    func cancel() {
        if fileDescriptor >= 0 { close(fileDescriptor) }
        fileDescriptor = -1
    }

    private func finish(result count: Int) -> OutgoingControlMessage {
        cancel()
        return OutgoingControlMessage(replyingTo: request, result: ["count": .number(JSONNumber(count))])
    }

    private func finish(error message: String) -> OutgoingControlMessage {
        cancel()
        return OutgoingControlMessage(
            replyingTo: request,
            error: JSONRPCErrorObject(
                code: JSONRPCErrorObject.internalErrorCode, message: message))
    }

    deinit { cancel() }
}
