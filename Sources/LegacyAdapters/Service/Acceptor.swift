import CSocketShims
import Glibc

/// `accept(2)` on a non-blocking listener with the policy every listener of this module
/// shares: close-on-exec, transient errors retried, and running out of fds reported so the
/// caller pauses (never spins on `EMFILE`).
enum Acceptor {
    /// What one ``accept(_:address:length:)`` gave.
    enum Outcome {
        case accepted(Int32)
        /// The queue is empty (`EAGAIN`).
        case empty
        /// `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM`: pause for ``backoff`` before trying again.
        case outOfResources
        /// Any other error, with its errno.
        case failed(Int32)
    }

    /// How long a listener stops accepting after ``Outcome/outOfResources``.
    static let backoff: Duration = .milliseconds(100)

    /// Accepts one connection (close-on-exec), retrying `EINTR`, `ECONNABORTED` and `EPROTO`.
    static func accept(
        _ listener: Int32, address: UnsafeMutablePointer<sockaddr>? = nil,
        length: UnsafeMutablePointer<socklen_t>? = nil
    ) -> Outcome {
        for _ in 0..<64 {
            let fd = endpointmux_accept_cloexec(listener, address, length)
            if fd >= 0 { return .accepted(fd) }
            switch errno {
            case EINTR, ECONNABORTED, EPROTO: continue
            case EAGAIN, EWOULDBLOCK: return .empty
            case EMFILE, ENFILE, ENOBUFS, ENOMEM: return .outOfResources
            case let code: return .failed(code)
            }
        }
        return .empty
    }
}
