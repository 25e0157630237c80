@_spi(Internals) public import EndpointMux

/// A JSON-FD control message with the file descriptors that came with it.
///
/// The message owns its fds: take them with ``takeFileDescriptors()``; whatever is not
/// taken is closed when the message is released, so no received fd can leak.
public final class ReceivedControlMessage: Sendable {
    /// The JSON-RPC message.
    public let message: ControlMessage
    private let descriptors: HeldFileDescriptors

    init(message: ControlMessage, fileDescriptors: consuming FileDescriptorQueue) {
        self.message = message
        self.descriptors = HeldFileDescriptors(fileDescriptors)
    }

    /// How many fds are still held.
    public var fileDescriptorCount: Int { descriptors.count }

    /// Takes ownership of the fds (positions 0..<n, in order); later calls return none.
    public func takeFileDescriptors() -> FileDescriptorQueue { descriptors.take() }
}

/// Fds held for whoever takes them first; closed on release if nobody does. Shared by
/// every type that pairs a message with its fds.
final class HeldFileDescriptors: @unchecked Sendable {
    private let lock = NSLockLike()
    private var descriptors: FileDescriptorQueue

    init(_ descriptors: consuming FileDescriptorQueue) { self.descriptors = descriptors }

    var count: Int { lock.withLock { descriptors.count } }

    func take() -> FileDescriptorQueue { lock.withLock { descriptors.dequeue(descriptors.count) } }
}

/// A JSON-FD control message to send, with the fds it carries (owned until sent; sent
/// fds are closed after the send, unsent ones when this is released).
public final class OutgoingControlMessage: Sendable {
    /// The JSON-RPC message; its `fds` member is set from the fd count when encoded.
    public let message: ControlMessage
    private let descriptors: HeldFileDescriptors

    /// A message with `fileDescriptors` attached (positions 0..<n).
    public init(_ message: ControlMessage, fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue()) {
        self.message = message
        self.descriptors = HeldFileDescriptors(fileDescriptors)
    }

    /// A success response to `request`.
    public convenience init(
        replyingTo request: ControlRequest, result: JSONValue,
        fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue()
    ) {
        self.init(.response(ControlResponse(id: request.id, result: result)), fileDescriptors: fileDescriptors)
    }

    /// An error response to `request`.
    public convenience init(replyingTo request: ControlRequest, error: JSONRPCErrorObject) {
        self.init(.response(ControlResponse(id: request.id, error: error)))
    }

    /// Takes the fds (for sending).
    package func takeFileDescriptors() -> FileDescriptorQueue { descriptors.take() }
}

/// Per-connection state a service's handlers may keep (touched only on the connection's
/// event-loop thread).
public final class ConnectionContext {
    /// Counters by name, e.g. requests seen on this connection.
    public var counters: [String: Int] = [:]
    /// Creates an empty context.
    public init() {}
}
