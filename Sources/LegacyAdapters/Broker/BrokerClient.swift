@_spi(Internals) public import EndpointMux
import Glibc

/// A client of a ``BrokerServer``: `listen`, `accept`, `connect`, `close` as `async` calls
/// that return the sockets the broker passes.
///
/// Any number of calls may wait at once (accepts on several listeners, connects): requests
/// are written at once and answers are matched by id on a reader thread of the client's
/// own, which sleeps in `poll(2)` (no busy-waiting, no thread of Swift concurrency's pool
/// blocked). Cancelling the calling task sends `$/cancelRequest`; the call then ends with
/// `EndpointMuxError/broker(_:)` `BrokerError/cancelled` — or with its result, when the
/// broker answered first (the fd is never lost). Closing the client (or releasing it)
/// ends the connection, and the broker closes everything the client owned.
public final class BrokerClient: Sendable {
    /// A listener held by the broker for this client.
    public struct Listener: Sendable {
        /// The broker's id for it.
        public let id: BrokerListenerID
        /// The bound address (the real port when 0 was asked; `pair` for a rendezvous).
        public let endpoint: BrokerEndpoint
        let core: BrokerClientCore

        /// Waits for the next inbound connection: the accepted socket and its peer's address.
        public func accept() async throws(EndpointMuxError) -> Accepted {
            let (result, fd) = try await core.call(.accept(listener: id))
            guard let fd else { throw .malformedAnswer("accept answered without a socket") }
            let socket = OwnedFileDescriptor(taking: fd)
            guard case let .accepted(_, _, peer) = result else { throw .malformedAnswer("accept answered \(result)") }
            return Accepted(socket: socket, peer: peer)
        }

        /// Closes the listener; accepts still waiting on it end with `BrokerError/listenerClosed(_:)`.
        public func close() async throws(EndpointMuxError) {
            _ = try await core.call(.close(listener: id))
        }
    }

    /// An accepted connection: the socket (owned) and the peer's address.
    public struct Accepted: ~Copyable, Sendable {
        /// The connected socket.
        public var socket: OwnedFileDescriptor
        /// The peer's address (`pair` for a rendezvous).
        public let peer: BrokerEndpoint

        /// The socket, taking ownership.
        public consuming func takeSocket() -> OwnedFileDescriptor { socket }
    }

    let core: BrokerClientCore

    /// Connects to the broker at `socketPath`.
    /// - Throws: `EndpointMuxError` when connecting fails or times out.
    public init(socketPath: String, connectTimeout: Duration = .seconds(10)) throws(EndpointMuxError) {
        let socket = try ClientSocket.connect(to: socketPath, deadline: .now + connectTimeout)
        core = try BrokerClientCore(socket: socket)
    }

    /// The connection's fd (owned by the client; for diagnostics).
    package var fileDescriptor: Int32 { core.fileDescriptor }

    /// Asks the broker to listen on `endpoint` (`tcp` port 0: any; `pair`: a rendezvous).
    public func listen(_ endpoint: BrokerEndpoint, backlog: Int? = nil) async throws(EndpointMuxError) -> Listener {
        let (result, _) = try await core.call(.listen(endpoint: endpoint, backlog: backlog))
        guard case let .listening(id, bound) = result else { throw .malformedAnswer("listen answered \(result)") }
        return Listener(id: id, endpoint: bound, core: core)
    }

    /// Asks the broker to connect to `endpoint`; the socket arrives once connected.
    /// - Parameter endpoint: where to connect (a `pair` endpoint is not allowed here).
    /// - Parameter timeout: the broker gives up after this long (its default: 30 s).
    public func connect(
        _ endpoint: BrokerEndpoint, timeout: Duration? = nil
    ) async throws(EndpointMuxError) -> OwnedFileDescriptor {
        try await connect(.endpoint(endpoint), timeout: timeout)
    }

    /// Connects to a `pair` listener (this client's or another's); the socket arrives once an
    /// `accept` on it took the other end.
    public func connect(
        listener: BrokerListenerID, timeout: Duration? = nil
    ) async throws(EndpointMuxError) -> OwnedFileDescriptor {
        try await connect(.listener(listener), timeout: timeout)
    }

    private func connect(
        _ target: BrokerConnectTarget, timeout: Duration?
    ) async throws(EndpointMuxError) -> OwnedFileDescriptor {
        let milliseconds = timeout.map { duration -> Int in
            let (seconds, attoseconds) = duration.components
            return Int(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        }
        let (_, fd) = try await core.call(.connect(target, timeoutMilliseconds: milliseconds))
        guard let fd else { throw .malformedAnswer("connect answered without a socket") }
        return OwnedFileDescriptor(taking: fd)
    }

    /// Closes listener `id`.
    public func close(listener id: BrokerListenerID) async throws(EndpointMuxError) {
        _ = try await core.call(.close(listener: id))
    }

    /// Sends a raw request and returns the raw answer (for tools and tests that send what
    /// the typed calls cannot, e.g. bad params). The reply owns its fds.
    package func call(method: String, params: JSONValue?) async throws(EndpointMuxError) -> ControlReply {
        try await core.rawCall(method: method, params: params)
    }

    /// Ends the connection: waiting calls end with `EndpointMuxError/peerClosed`; the broker
    /// closes the client's listeners and drops its waiting requests. Returns once the
    /// connection's fd is closed. Idempotent.
    public func close() { core.close() }

    deinit { core.close() }
}

/// A socket whose fd is shut down and closed exactly once, by the first ``close()``; later
/// calls wait for that one and touch the fd number no more (it may belong to another
/// socket by then).
final class BrokerClientCore: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLockLike()
    private let writeLock = NSLockLike()
    /// Serializes ``close()``; `closed` is read and written under it only.
    private let closeLock = NSLockLike()
    private var closed = false
    private var output = OutboundQueue()
    private var nextID = 1
    private var waiting: [JSONRPCID: CheckedContinuation<Result<ControlReply, EndpointMuxError>, Never>] = [:]
    private var ended: EndpointMuxError?
    private var fdClosed = false
    private var reader: OwnedThread?

    var fileDescriptor: Int32 { fd }

    init(socket: consuming OwnedFileDescriptor) throws(EndpointMuxError) {
        fd = socket.release()
        do {
            reader = try OwnedThread { [self] in readLoop() }
        } catch {
            _ = Glibc.close(fd)
            throw .transport(error)
        }
    }

    func close() {
        closeLock.withLock {
            // Closed already (`close()` then `deinit`): the number may be another socket's
            // now, which a second `shutdown` would cut.
            guard !closed else { return }
            closed = true
            let thread = lock.withLock { () -> OwnedThread? in
                if ended == nil { ended = .peerClosed }
                defer { reader = nil }
                return reader
            }
            _ = shutdown(fd, Int32(SHUT_RDWR))  // wakes the reader and a blocked sender
            thread?.join()
            writeLock.withLock {
                fdClosed = true
                _ = Glibc.close(fd)
            }
        }
    }

    /// Sends `request` and waits for its answer; the fd of a result that carries one (the
    /// caller owns it from here).
    func call(_ request: BrokerRequest) async throws(EndpointMuxError) -> (BrokerResult, Int32?) {
        let reply = try await rawCall(method: request.method, params: request.params)
        switch reply.response.outcome {
        case let .result(value):
            let result: BrokerResult
            do { result = try BrokerResult(parsing: value, method: request.method) } catch {
                throw .malformedAnswer(error.description)
            }
            guard result.fileDescriptorCount > 0 else { return (result, nil) }
            var fds = reply.takeFileDescriptors()
            guard fds.count == result.fileDescriptorCount, let fd = fds.popFirst() else {
                throw .malformedAnswer("expected 1 fd, got \(fds.count)")  // `fds` closes them
            }
            return (result, fd.release())
        case let .error(object):
            if let error = BrokerError(object) { throw .broker(error) }
            throw .rejected(object)
        }
    }

    func rawCall(method: String, params: JSONValue?) async throws(EndpointMuxError) -> ControlReply {
        let id = lock.withLock { () -> JSONRPCID in
            defer { nextID += 1 }
            return .number(JSONNumber(nextID))
        }
        let message = ControlMessage.request(ControlRequest(method: method, params: params, id: id))
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation {
                (continuation: CheckedContinuation<Result<ControlReply, EndpointMuxError>, Never>) in
                let failure = lock.withLock { () -> EndpointMuxError? in
                    if let ended { return ended }
                    waiting[id] = continuation
                    return nil
                }
                if let failure {
                    continuation.resume(returning: .failure(.client(failure)))
                    return
                }
                if let error = send(message) {
                    if let continuation = lock.withLock({ waiting.removeValue(forKey: id) }) {
                        continuation.resume(returning: .failure(.client(error)))
                    }
                    return
                }
                // Cancelled before the request left: the handler's notification may have
                // gone first (ignored by the broker), so send it again after the request.
                if Task.isCancelled { cancel(id) }
            }
        } onCancel: {
            cancel(id)
        }
        return try outcome.get()
    }

    private func cancel(_ id: JSONRPCID) {
        guard lock.withLock({ waiting[id] != nil }) else { return }
        _ = send(.notification(BrokerCancel(id: id).notification))
    }

    /// Writes one message (blocking, under the write lock, at most 10 s).
    private func send(_ message: ControlMessage) -> EndpointMuxError? {
        writeLock.withLock { () -> EndpointMuxError? in
            guard !fdClosed else { return .peerClosed }
            output.enqueue(message.encoded())
            do throws(EndpointMuxError) {
                try output.flushBlocking(to: fd, deadline: .now + .seconds(10))
                return nil
            } catch {
                output = OutboundQueue()
                if error.code == .timedOut { return .timedOut }
                if error.errno == EPIPE || error.errno == ECONNRESET { return .peerClosed }
                return .transport(error)
            }
        }
    }

    /// The reader thread: decodes answers and resumes their callers until the connection ends.
    private func readLoop() {
        var receiver = SocketReceiver()
        var decoder = ControlDecoder()
        var input = ReceiveBuffer(initialCapacity: 16 * 1024)
        var queue = FileDescriptorQueue()
        var endOfInput = false
        var failure: EndpointMuxError = .peerClosed
        reading: while true {
            let queued = queue.count
            let eof = endOfInput
            let decoded = input.withUnsafeBytes { raw in
                Result { () throws(ControlError) in
                    try decoder.decode(raw, queuedFileDescriptors: queued, endOfInput: eof)
                }
            }
            let step: ControlDecoderStep
            switch decoded {
            case let .success(value): step = value
            case let .failure(error):
                failure = .malformedAnswer(error.description)
                break reading
            }
            switch step {
            case let .message(message, count, consumed):
                input.consume(consumed)
                let descriptors = queue.dequeue(count)
                switch message {
                case let .response(response):
                    let reply = ControlReply(response: response, fileDescriptors: descriptors)
                    let continuation = lock.withLock { waiting.removeValue(forKey: response.id) }
                    continuation?.resume(returning: .success(reply))  // nobody waits: its fds close with it
                case let .notification(notification) where notification.method == ControlNotification.epitaphMethod:
                    let status = notification.params?["status"]?.numberValue?.int64 ?? 0
                    let reason = notification.params?["reason"]?.stringValue ?? ""
                    failure = .epitaph(
                        Epitaph(status: EpitaphStatus(rawValue: Int32(clamping: status)), reason: reason))
                    break reading
                case .notification, .request:
                    continue
                }
            case let .invalid(_, _, count, consumed):
                input.consume(consumed)
                var dropped = queue.dequeue(count)
                dropped.closeAll()
            case .endOfStream:
                break reading
            case .needMoreBytes, .needMoreFileDescriptors:
                if endOfInput { break reading }
                do {
                    guard try SocketIO.waitUntilReadable(fd, timeout: nil) else { continue }
                    var outcome = SocketIO.ReceiveOutcome.wouldBlock
                    _ = try input.append(minimumSpace: 64 * 1024) { (space) throws(EndpointMuxError) -> Int in
                        outcome = try receiver.receive(from: fd, into: space, fileDescriptors: &queue)
                        if case let .received(n) = outcome { return n }
                        return 0
                    }
                    if case .endOfFile = outcome { endOfInput = true }
                } catch {
                    if error.errno == ECONNRESET {
                        failure = .peerClosed
                    } else {
                        failure = .transport(error)
                    }
                    break reading
                }
            }
        }
        queue.closeAll()
        let orphans = lock.withLock { () -> [CheckedContinuation<Result<ControlReply, EndpointMuxError>, Never>] in
            if ended == nil { ended = failure }
            defer { waiting = [:] }
            return Array(waiting.values)
        }
        let reason = lock.withLock { ended ?? failure }
        for continuation in orphans { continuation.resume(returning: .failure(.client(reason))) }
    }
}

extension BrokerClient {
    /// The local (`getsockname`) and peer (`getpeername`) addresses of a socket, e.g. one a
    /// broker returned; `nil` where the call fails.
    package static func addresses(of fd: Int32) -> (local: BrokerEndpoint?, peer: BrokerEndpoint?) {
        (BrokerSockets.address(of: fd, peer: false), BrokerSockets.address(of: fd, peer: true))
    }
}
