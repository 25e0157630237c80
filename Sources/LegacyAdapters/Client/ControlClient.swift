@_spi(Internals) public import EndpointMux
import Glibc

/// A response to a control request, with the fds that came with it (owned: whatever is
/// not taken is closed when the reply is released).
public final class ControlReply: Sendable {
    /// The JSON-RPC response.
    public let response: ControlResponse
    private let descriptors: HeldFileDescriptors

    init(response: ControlResponse, fileDescriptors: consuming FileDescriptorQueue) {
        self.response = response
        self.descriptors = HeldFileDescriptors(fileDescriptors)
    }

    /// How many fds are still held.
    package var fileDescriptorCount: Int { descriptors.count }

    /// Takes ownership of the fds (positions 0..<n, in order); later calls return none.
    public func takeFileDescriptors() -> FileDescriptorQueue { descriptors.take() }
}

/// A JSON-FD (jsonrpc-fdpass) client on a Unix stream socket: sends requests and
/// notifications with fds (batched, `MSG_NOSIGNAL`, never truncated), receives responses
/// with fds through the same FIFO-queue receiver the server uses, and matches them by id.
/// An `rpc.epitaph` notification surfaces as `EndpointMuxError/epitaph(_:)`; EOF as
/// `EndpointMuxError/peerClosed`.
///
/// Calls are serialised. The synchronous forms wait with `poll(2)` on the caller's
/// thread (use them from a thread you own); the `async` forms wait on a thread of their
/// own, never on Swift concurrency's pool.
public final class ControlClient: @unchecked Sendable {
    private let socket: OwnedFileDescriptorBox
    private let lock = NSLockLike()
    private var receiver = SocketReceiver()
    private var decoder: ControlDecoder
    private var input = ReceiveBuffer(initialCapacity: 16 * 1024)
    private var queue = FileDescriptorQueue()
    private var output = OutboundQueue()
    private var nextID = 1
    private var early: [JSONRPCID: ControlReply] = [:]
    /// Answers that carried a waiting call's id but were not JSON-RPC responses.
    private var earlyMalformed: [JSONRPCID: JSONRPCViolation] = [:]

    /// The connected socket (owned; closed on deinit).
    package var fileDescriptor: Int32 { socket.rawValue }

    /// Connects to the Unix socket at `path`, giving up after `connectTimeout` (a server
    /// whose accept queue is full makes `connect` wait). The socket is non-blocking:
    /// every later call waits with `poll(2)` under its own deadline.
    ///
    /// `limits` bound what this client accepts: answer size, nesting and the fds one
    /// answer may declare (`ControlLimits/maxFileDescriptorsPerMessage`, default 1024;
    /// raise it to receive more, within the process's `RLIMIT_NOFILE`).
    /// - Throws: `EndpointMuxError/connect(_:)`; the errno is `ETIMEDOUT` when the timeout passed.
    public convenience init(
        socketPath path: String, limits: ControlLimits = ControlLimits(), connectTimeout: Duration = .seconds(10)
    ) throws(EndpointMuxError) {
        try self.init(socketPath: path, limits: limits, connectDeadline: .now + connectTimeout)
    }

    /// Connects to the Unix socket at `path`, giving up at `connectDeadline`; otherwise as
    /// ``init(socketPath:limits:connectTimeout:)``.
    /// - Throws: `EndpointMuxError/connect(_:)`; the errno is `ETIMEDOUT` when the deadline passed.
    public init(
        socketPath path: String, limits: ControlLimits = ControlLimits(), connectDeadline: ContinuousClock.Instant
    ) throws(EndpointMuxError) {
        socket = OwnedFileDescriptorBox(try ClientSocket.connect(to: path, deadline: connectDeadline))
        decoder = ControlDecoder(limits: limits)
    }

    /// A client on a socket that is already connected (made non-blocking; owned from now on).
    init(
        connected socket: consuming OwnedFileDescriptor, limits: ControlLimits = ControlLimits()
    ) throws(EndpointMuxError) {
        let box = OwnedFileDescriptorBox(socket)
        do { try SocketIO.setNonBlocking(box.rawValue, true) } catch { throw .transport(error) }
        self.socket = box
        decoder = ControlDecoder(limits: limits)
    }

    /// Lowers the fds sent per `sendmsg` (default 500; halved automatically on `EINVAL`).
    package func setMaxFileDescriptorsPerSendmsg(_ count: Int) {
        lock.withLock { output.maxFileDescriptorsPerSendmsg = count }
    }

    /// Sends a request carrying `fileDescriptors` and waits for its response.
    ///
    /// An answer with this request's id that is not a valid response (neither `result`
    /// nor `error`, both, a malformed `error` object, …) is reported at once as
    /// `EndpointMuxError/malformedAnswer(_:)`.
    public func call(
        _ method: String, params: JSONValue? = nil,
        fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue(),
        timeout: Duration = .seconds(10)
    ) throws(EndpointMuxError) -> ControlReply {
        try call(method, params: params, fileDescriptors: fileDescriptors, deadline: .now + timeout)
    }

    /// Sends a request carrying `fileDescriptors` and waits until `deadline` for its
    /// response; otherwise as the `timeout:` form.
    public func call(
        _ method: String, params: JSONValue? = nil,
        fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue(),
        deadline: ContinuousClock.Instant
    ) throws(EndpointMuxError) -> ControlReply {
        let id = lock.withLock { () -> JSONRPCID in
            defer { nextID += 1 }
            return .number(JSONNumber(nextID))
        }
        try send(
            .request(ControlRequest(method: method, params: params, id: id)), fileDescriptors: fileDescriptors,
            deadline: deadline)
        return try waitForResponse(id, deadline: deadline)
    }

    /// `call` on a thread of its own, for `async` code.
    public func call(
        _ method: String, params: JSONValue? = nil,
        fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue(),
        timeout: Duration = .seconds(10)
    ) async throws(EndpointMuxError) -> ControlReply {
        let handoff = HeldFileDescriptors(fileDescriptors)
        let result: Result<ControlReply, EndpointMuxError> = await withCheckedContinuation { continuation in
            do throws(EndpointMuxError) {
                try OwnedThread.detached { [self] in
                    let reply = Result { () throws(EndpointMuxError) in
                        try self.call(method, params: params, fileDescriptors: handoff.take(), timeout: timeout)
                    }
                    continuation.resume(returning: reply)
                }
            } catch {
                continuation.resume(returning: .failure(.transport(error)))
            }
        }
        return try result.get()
    }

    /// Sends a notification carrying `fileDescriptors` (no response comes).
    public func notify(
        _ method: String, params: JSONValue? = nil,
        fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue(), timeout: Duration = .seconds(10)
    ) throws(EndpointMuxError) {
        try send(
            .notification(ControlNotification(method: method, params: params)), fileDescriptors: fileDescriptors,
            deadline: .now + timeout)
    }

    /// Sends any control message with fds.
    public func send(
        _ message: ControlMessage, fileDescriptors: consuming FileDescriptorQueue, deadline: ContinuousClock.Instant
    ) throws(EndpointMuxError) {
        let outgoing = OutgoingControlMessage(message, fileDescriptors: fileDescriptors)
        let outcome = lock.withLock { () -> Result<Void, EndpointMuxError> in
            let descriptors = outgoing.takeFileDescriptors()
            output.enqueue(message.encoded(fileDescriptorCount: descriptors.count), fileDescriptors: descriptors)
            return Result { () throws(EndpointMuxError) in
                try output.flushBlocking(to: fileDescriptor, deadline: deadline)
            }
        }
        switch outcome {
        case .success: return
        case let .failure(error) where error.code == .timedOut: throw .timedOut
        case let .failure(error):
            if error.errno == EPIPE || error.errno == ECONNRESET { throw .peerClosed }
            throw .transport(error)
        }
    }

    /// Waits for the response with `id`; responses to other ids are kept for their callers.
    /// An answer with `id` that is not a valid response is ``EndpointMuxError/malformedAnswer(_:)`` at once.
    package func waitForResponse(
        _ id: JSONRPCID, deadline: ContinuousClock.Instant
    ) throws(EndpointMuxError) -> ControlReply {
        while true {
            let step = lock.withLock { () -> Result<ControlReply?, EndpointMuxError> in
                if let reply = early.removeValue(forKey: id) { return .success(reply) }
                if let violation = earlyMalformed.removeValue(forKey: id) {
                    return .failure(Self.malformed(id, violation))
                }
                return Result { () throws(EndpointMuxError) in try readOne(deadline: deadline) }.flatMap { answer in
                    switch answer {
                    case let .reply(reply):
                        if reply.response.id == id { return .success(reply) }
                        early[reply.response.id] = reply
                    case let .malformed(answerID, violation):
                        if answerID == id { return .failure(Self.malformed(id, violation)) }
                        earlyMalformed[answerID] = violation
                    case .other:
                        break
                    }
                    return .success(nil)
                }
            }
            if let reply = try step.get() { return reply }
        }
    }

    private static func malformed(_ id: JSONRPCID, _ violation: JSONRPCViolation) -> EndpointMuxError {
        .malformedAnswer("the answer to id \(id) is not a JSON-RPC response: \(violation)")
    }

    /// What one decoded message was, for the waiting caller.
    private enum Answer {
        /// A response.
        case reply(ControlReply)
        /// A well-framed object carrying this id that is not a valid response.
        case malformed(JSONRPCID, JSONRPCViolation)
        /// Something not for a waiting call (requests, notifications, invalid objects without id).
        case other
    }

    /// Reads until one message is decoded.
    private func readOne(deadline: ContinuousClock.Instant) throws(EndpointMuxError) -> Answer {
        var endOfInput = false
        while true {
            let queued = queue.count
            let eof = endOfInput
            let step: ControlDecoderStep
            let decoded = input.withUnsafeBytes { raw in
                Result { () throws(ControlError) in
                    try decoder.decode(raw, queuedFileDescriptors: queued, endOfInput: eof)
                }
            }
            switch decoded {
            case let .success(value): step = value
            case let .failure(error): throw .malformedAnswer(error.description)
            }
            switch step {
            case let .message(message, count, consumed):
                input.consume(consumed)
                let descriptors = queue.dequeue(count)
                switch message {
                case let .response(response):
                    return .reply(ControlReply(response: response, fileDescriptors: descriptors))
                case let .notification(notification) where notification.method == ControlNotification.epitaphMethod:
                    let status = notification.params?["status"]?.numberValue?.int64 ?? 0
                    let reason = notification.params?["reason"]?.stringValue ?? ""
                    throw .epitaph(Epitaph(status: EpitaphStatus(rawValue: Int32(clamping: status)), reason: reason))
                case .notification, .request:
                    return .other  // not for this client; its fds close with `descriptors`
                }
            case let .invalid(violation, id, count, consumed):
                input.consume(consumed)
                _ = queue.dequeue(count)  // closed: an invalid answer's fds are never handed out
                guard let id else { return .other }
                return .malformed(id, violation)
            case .endOfStream:
                throw .peerClosed
            case .needMoreBytes, .needMoreFileDescriptors:
                if endOfInput { throw .peerClosed }
                let remaining = ContinuousClock.now.duration(to: deadline)
                guard remaining > .zero else { throw .timedOut }
                let ready: Bool
                do { ready = try SocketIO.waitUntilReadable(fileDescriptor, timeout: remaining) } catch {
                    throw .transport(error)
                }
                guard ready else { throw .timedOut }
                var outcome = SocketIO.ReceiveOutcome.wouldBlock
                do {
                    _ = try input.append(minimumSpace: 64 * 1024) { (space) throws(EndpointMuxError) -> Int in
                        outcome = try receiver.receive(from: fileDescriptor, into: space, fileDescriptors: &queue)
                        if case let .received(n) = outcome { return n }
                        return 0
                    }
                } catch {
                    if error.errno == ECONNRESET { throw .peerClosed }
                    throw .transport(error)
                }
                if case .endOfFile = outcome { endOfInput = true }
            }
        }
    }
}
