@_spi(Internals) package import EndpointMux
import Glibc

/// Unix-domain stream socket helpers: address building, connect, and the reference
/// ServiceServer's bind sequence.
package enum UnixSocket {
    /// Calls `body` with a `sockaddr_un` for `path`.
    static func withAddress<R>(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R
    ) throws(EndpointMuxError) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { throw .pathTooLong(path) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2) + socklen_t(bytes.count + 1)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    static func makeSocket() throws(EndpointMuxError) -> OwnedFileDescriptor {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(operation: "socket", path: "", errno: errno) }
        return OwnedFileDescriptor(taking: fd)
    }

    /// Connects a new blocking stream socket to `path`.
    /// - Throws: ``EndpointMuxError/system(operation:path:errno:)`` (e.g. `ECONNREFUSED`, `ENOENT`).
    package static func connect(to path: String) throws(EndpointMuxError) -> OwnedFileDescriptor {
        let socket = try makeSocket()
        let result = try withAddress(path) { Glibc.connect(socket.rawValue, $0, $1) }
        guard result == 0 else { throw .system(operation: "connect", path: path, errno: errno) }
        return socket
    }

    /// Binds and listens (backlog capped by the kernel at `somaxconn`) on `path` like running-process's ServiceServer: `mkdir -p` the
    /// directory; on `EADDRINUSE` connect to it — success means a live server
    /// (``EndpointMuxError/alreadyRunning(name:path:)``), `ECONNREFUSED` means a stale socket,
    /// which is removed under `<path>.bind.lock` (`flock`) before binding again.
    package static func bindListener(
        path: String, serviceName: String, backlog: Int32 = 4096
    )
        throws(EndpointMuxError) -> OwnedFileDescriptor
    {
        try FileSystem.makeDirectories(FileSystem.parent(of: path))
        let listener = try makeSocket()
        if try bind(listener.rawValue, path) != 0 {
            guard errno == EADDRINUSE else { throw .system(operation: "bind", path: path, errno: errno) }
            if (try? connect(to: path)) != nil { throw .alreadyRunning(name: serviceName, path: path) }
            let lock = open(path + ".bind.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard lock >= 0 else { throw .system(operation: "open", path: path + ".bind.lock", errno: errno) }
            defer { close(lock) }
            guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { throw .alreadyRunning(name: serviceName, path: path) }
            defer { flock(lock, LOCK_UN) }
            if (try? connect(to: path)) != nil { throw .alreadyRunning(name: serviceName, path: path) }
            unlink(path)
            guard try bind(listener.rawValue, path) == 0 else {
                throw .system(operation: "bind", path: path, errno: errno)
            }
        }
        guard listen(listener.rawValue, backlog) == 0 else {
            throw .system(operation: "listen", path: path, errno: errno)
        }
        return listener
    }

    private static func bind(_ fd: Int32, _ path: String) throws(EndpointMuxError) -> Int32 {
        try withAddress(path) { Glibc.bind(fd, $0, $1) }
    }
}
