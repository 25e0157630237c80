public import EndpointMux
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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
    public var fileDescriptorCount: Int { descriptors.count }

    /// Takes ownership of the fds (positions 0..<n, in order); later calls return none.
    public func takeFileDescriptors() -> FileDescriptorQueue { descriptors.take() }
}

/// A JSON-FD (jsonrpc-fdpass) client on a Unix stream socket: sends requests and
/// notifications with fds (batched, `MSG_NOSIGNAL`, never truncated), receives responses
/// with fds through the same FIFO-queue receiver the server uses, and matches them by id.
/// An `rpc.epitaph` notification surfaces as ``ClientError/epitaph(_:)``; EOF as
/// ``ClientError/peerClosed``.
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

    /// The connected socket (owned; closed on deinit).
    public var fileDescriptor: Int32 { socket.rawValue }

    /// Connects to the Unix socket at `path`.
    public init(socketPath path: String, limits: ControlLimits = ControlLimits()) throws(ClientError) {
        do { socket = OwnedFileDescriptorBox(try UnixSocket.connect(to: path)) } catch { throw .connect(error) }
        decoder = ControlDecoder(limits: limits)
    }

    /// Lowers the fds sent per `sendmsg` (default 500; halved automatically on `EINVAL`).
    public func setMaxFileDescriptorsPerSendmsg(_ count: Int) {
        lock.withLock { output.maxFileDescriptorsPerSendmsg = count }
    }

    /// Sends a request carrying `fileDescriptors` and waits for its response.
    public func call(
        _ method: String, params: JSONValue? = nil,
        fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue(),
        timeout: Duration = .seconds(10)
    ) throws(ClientError) -> ControlReply {
        let deadline = ContinuousClock.now + timeout
        let id = lock.withLock { () -> JSONRPCID in
            defer { nextID += 1 }
            return .number(JSONNumber(nextID))
        }
        try send(.request(ControlRequest(method: method, params: params, id: id)), fileDescriptors: fileDescriptors,
                 deadline: deadline)
        return try waitForResponse(id, deadline: deadline)
    }

    /// `call` on a thread of its own, for `async` code.
    public func call(
        _ method: String, params: JSONValue? = nil, fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue(),
        timeout: Duration = .seconds(10)
    ) async throws(ClientError) -> ControlReply {
        let handoff = HeldFileDescriptors(fileDescriptors)
        let result: Result<ControlReply, ClientError> = await withCheckedContinuation { continuation in
            do throws(TransportError) {
                try OwnedThread.detached { [self] in
                    let reply = Result { () throws(ClientError) in
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
    ) throws(ClientError) {
        try send(.notification(ControlNotification(method: method, params: params)), fileDescriptors: fileDescriptors,
                 deadline: .now + timeout)
    }

    /// Sends any control message with fds.
    public func send(
        _ message: ControlMessage, fileDescriptors: consuming FileDescriptorQueue, deadline: ContinuousClock.Instant
    ) throws(ClientError) {
        let outgoing = OutgoingControlMessage(message, fileDescriptors: fileDescriptors)
        let outcome = lock.withLock { () -> Result<Void, TransportError> in
            let descriptors = outgoing.takeFileDescriptors()
            output.enqueue(message.encoded(fileDescriptorCount: descriptors.count), fileDescriptors: descriptors)
            return Result { () throws(TransportError) in try output.flushBlocking(to: fileDescriptor, deadline: deadline) }
        }
        switch outcome {
        case .success: return
        case .failure(.timedOut): throw .timedOut
        case let .failure(error):
            if case let .system(_, code) = error, code == EPIPE || code == ECONNRESET { throw .peerClosed }
            throw .transport(error)
        }
    }

    /// Waits for the response with `id`; responses to other ids are kept for their callers.
    public func waitForResponse(_ id: JSONRPCID, deadline: ContinuousClock.Instant) throws(ClientError) -> ControlReply {
        while true {
            let step = lock.withLock { () -> Result<ControlReply?, ClientError> in
                if let reply = early.removeValue(forKey: id) { return .success(reply) }
                return Result { () throws(ClientError) in try readOne(deadline: deadline) }.map { reply in
                    guard let reply else { return nil }
                    if reply.response.id == id { return reply }
                    early[reply.response.id] = reply
                    return nil
                }
            }
            if let reply = try step.get() { return reply }
        }
    }

    /// Reads until one response is decoded (nil if something else was consumed).
    private func readOne(deadline: ContinuousClock.Instant) throws(ClientError) -> ControlReply? {
        var endOfInput = false
        while true {
            let queued = queue.count
            let eof = endOfInput
            let step: ControlDecoderStep
            let decoded = input.withUnsafeBytes { raw in
                Result { () throws(ControlError) in try decoder.decode(raw, queuedFileDescriptors: queued, endOfInput: eof) }
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
                    return ControlReply(response: response, fileDescriptors: descriptors)
                case let .notification(notification) where notification.method == ControlNotification.epitaphMethod:
                    let status = notification.params?["status"]?.numberValue?.int64 ?? 0
                    let reason = notification.params?["reason"]?.stringValue ?? ""
                    throw .epitaph(Epitaph(status: EpitaphStatus(rawValue: Int32(clamping: status)), reason: reason))
                case .notification, .request:
                    return nil  // not for this client; its fds close with `descriptors`
                }
            case let .invalid(_, _, count, consumed):
                input.consume(consumed)
                _ = queue.dequeue(count)
                return nil
            case .endOfStream:
                throw .peerClosed
            case .needMoreBytes, .needMoreFileDescriptors:
                if endOfInput { throw .peerClosed }
                let remaining = ContinuousClock.now.duration(to: deadline)
                guard remaining > .zero else { throw .timedOut }
                let ready: Bool
                do { ready = try SocketIO.waitUntilReadable(fileDescriptor, timeout: remaining) } catch { throw .transport(error) }
                guard ready else { throw .timedOut }
                var outcome = SocketIO.ReceiveOutcome.wouldBlock
                do {
                    _ = try input.append(minimumSpace: 64 * 1024) { (space) throws(TransportError) -> Int in
                        outcome = try receiver.receive(from: fileDescriptor, into: space, fileDescriptors: &queue)
                        if case let .received(n) = outcome { return n }
                        return 0
                    }
                } catch {
                    if case let .system(_, code) = error, code == ECONNRESET { throw .peerClosed }
                    throw .transport(error)
                }
                if case .endOfFile = outcome { endOfInput = true }
            }
        }
    }
}
