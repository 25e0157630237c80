@_spi(Internals) import EndpointMux
import Glibc

/// Connecting a client socket under a deadline.
///
/// A Unix stream `connect` whose listener's accept queue is full blocks (a blocking
/// socket) or fails at once with `EAGAIN` (a non-blocking one), and `poll` cannot wait for
/// room in someone else's queue. So the wait happens inside `connect` itself, bounded by
/// `SO_SNDTIMEO` set to the time that remains (the kernel's timeout for a Unix connect);
/// `EINPROGRESS` (other socket families) is waited for with `poll` and `SO_ERROR`. The
/// connected socket is returned non-blocking, so later writes and reads keep to their
/// deadlines too.
enum ClientSocket {
    /// Connects to the Unix socket at `path`, giving up at `deadline`.
    /// - Throws: ``EndpointMuxError/connect(_:)`` with ``EndpointMuxError/system(operation:path:errno:)``:
    ///   `ETIMEDOUT` when the deadline passed first, the `connect` errno otherwise
    ///   (`ENOENT`, `ECONNREFUSED`, …).
    static func connect(
        to path: String, deadline: ContinuousClock.Instant
    ) throws(EndpointMuxError) -> OwnedFileDescriptor {
        let socket: OwnedFileDescriptor
        do { socket = try UnixSocket.makeSocket() } catch { throw .connect(error) }
        let fd = socket.rawValue
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { throw timedOut(path) }
            guard setSendTimeout(fd, remaining) else {
                throw .connect(.system(operation: "setsockopt", path: path, errno: errno))
            }
            let result: Int32
            do {
                result = try UnixSocket.withAddress(path) { Glibc.connect(fd, $0, $1) }
            } catch {
                throw .connect(error)
            }
            if result == 0 { break }
            let code = errno
            switch code {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                // The accept queue stayed full for the whole timeout (or a signal cut it short).
                if ContinuousClock.now < deadline { continue }
                throw timedOut(path)
            case EINPROGRESS, EALREADY:
                try finishInProgress(fd, path: path, deadline: deadline)
            case EISCONN:
                break
            default:
                throw .connect(.system(operation: "connect", path: path, errno: code))
            }
            break
        }
        guard setSendTimeout(fd, .zero) else {
            throw .connect(.system(operation: "setsockopt", path: path, errno: errno))
        }
        do { try SocketIO.setNonBlocking(fd, true) } catch { throw .transport(error) }
        return socket
    }

    /// Waits for an in-progress connect to finish and reads its outcome.
    private static func finishInProgress(
        _ fd: Int32, path: String, deadline: ContinuousClock.Instant
    ) throws(EndpointMuxError) {
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else { throw timedOut(path) }
        let ready: Bool
        do { ready = try SocketIO.waitUntilWritable(fd, timeout: remaining) } catch { throw .transport(error) }
        guard ready else { throw timedOut(path) }
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0 else {
            throw .connect(.system(operation: "getsockopt", path: path, errno: errno))
        }
        guard failure == 0 else { throw .connect(.system(operation: "connect", path: path, errno: failure)) }
    }

    private static func timedOut(_ path: String) -> EndpointMuxError {
        .connect(.system(operation: "connect", path: path, errno: ETIMEDOUT))
    }

    /// Sets `SO_SNDTIMEO` (zero: no timeout). A positive duration below one microsecond
    /// rounds up, so it never turns into "no timeout".
    private static func setSendTimeout(_ fd: Int32, _ duration: Duration) -> Bool {
        let (seconds, attoseconds) = duration.components
        var microseconds = attoseconds / 1_000_000_000_000
        if seconds == 0, microseconds == 0, attoseconds > 0 { microseconds = 1 }
        var value = timeval()
        value.tv_sec = .init(clamping: seconds)
        value.tv_usec = .init(clamping: microseconds)
        return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size)) == 0
    }
}
