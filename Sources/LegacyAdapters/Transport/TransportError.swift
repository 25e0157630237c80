/// Errors of the socket transport layer: `recvmsg` / `sendmsg` / `poll` and the
/// file-descriptor bookkeeping around them.
///
/// Every case that comes from a system call names the call and carries its `errno`.
public enum TransportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The system call `operation` (e.g. `"recvmsg"`, `"sendmsg"`, `"poll"`) failed with
    /// `errno`. A send to a peer that has gone away is `.system(operation: "sendmsg",
    /// errno: EPIPE)` (never a `SIGPIPE`).
    case system(operation: String, errno: Int32)
    /// The kernel refused a `sendmsg` carrying `count` descriptors with `errno` (`EINVAL`
    /// on Linux, whose limit is 253 per call). Nothing was sent; retry with fewer.
    case fileDescriptorBatchRejected(count: Int, errno: Int32)
    /// `recvmsg` reported `MSG_CTRUNC`: the control buffer was too small (or the process
    /// ran out of descriptors) and the kernel dropped descriptors. The `received`
    /// descriptors that did arrive have been closed. The stream is out of step with its
    /// descriptors and must be treated as broken.
    case controlTruncated(received: Int)
    /// The peer ended the stream while more was expected. ``SocketIO`` itself reports
    /// an orderly end of stream as ``SocketIO/ReceiveOutcome/endOfFile``; drivers
    /// built on it throw this when that end cuts a message short.
    case peerClosed
    /// `operation` did not complete before its deadline.
    case timedOut(operation: String)
    /// An argument was out of range; the text says which and why.
    case invalidArgument(String)

    /// A one-line account of what went wrong, with the errno where there is one.
    public var description: String {
        switch self {
        case let .system(operation, errno):
            return "\(operation) failed: errno \(errno)"
        case let .fileDescriptorBatchRejected(count, errno):
            return "sendmsg refused \(count) file descriptors in one call: errno \(errno)"
        case let .controlTruncated(received):
            return "recvmsg control data truncated (MSG_CTRUNC): file descriptors were dropped; the \(received) that arrived were closed"
        case .peerClosed:
            return "the peer closed the connection"
        case let .timedOut(operation):
            return "\(operation) timed out"
        case let .invalidArgument(reason):
            return "invalid argument: \(reason)"
        }
    }
}
