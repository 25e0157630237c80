@_spi(Internals) import EndpointMux
import Glibc

/// Socket system calls for the broker's endpoints: addresses in and out, non-blocking
/// listeners and connects. Every fd is created close-on-exec.
///
/// This file must not import CSocketShims: in a whole-module (release) build, a file that
/// imports it and names `SOCK_STREAM` makes the constant resolve through CSocketShims's copy
/// of `<sys/socket.h>`, and files that do not import CSocketShims (UnixSocket.swift) then
/// cannot find it. The shims the broker needs are called from BrokerServer.swift.
enum BrokerSockets {
    /// An errno-carrying failure.
    struct Failure: Error {
        var errno: Int32
    }

    /// Calls `body` with the `sockaddr` of a `tcp` or `unix` endpoint.
    static func withAddress<R>(
        _ endpoint: BrokerEndpoint, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R
    ) throws(Failure) -> R {
        switch endpoint {
        case let .tcp(host, port):
            if host.contains(":") {
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = port.bigEndian
                guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw Failure(errno: EINVAL) }
                return withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                    }
                }
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw Failure(errno: EINVAL) }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case let .unix(path):
            do {
                return try UnixSocket.withAddress(path, body)
            } catch {
                throw Failure(errno: ENAMETOOLONG)
            }
        case .pair:
            throw Failure(errno: EAFNOSUPPORT)
        }
    }

    /// The endpoint of a `sockaddr` (an unnamed unix socket is `unix` with an empty path).
    static func endpoint(_ storage: UnsafeRawPointer, length: socklen_t) -> BrokerEndpoint {
        let family = Int32(storage.load(as: sockaddr.self).sa_family)
        switch family {
        case AF_INET:
            var address = storage.loadUnaligned(as: sockaddr_in.self)
            var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            _ = inet_ntop(AF_INET, &address.sin_addr, &buffer, socklen_t(buffer.count))
            return .tcp(host: string(buffer), port: UInt16(bigEndian: address.sin_port))
        case AF_INET6:
            var address = storage.loadUnaligned(as: sockaddr_in6.self)
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            _ = inet_ntop(AF_INET6, &address.sin6_addr, &buffer, socklen_t(buffer.count))
            return .tcp(host: string(buffer), port: UInt16(bigEndian: address.sin6_port))
        case AF_UNIX:
            let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
            let count = max(0, Int(length) - offset)
            let bytes = UnsafeRawBufferPointer(start: storage + offset, count: count)
            let path = bytes.prefix { $0 != 0 }
            return .unix(path: String(decoding: path, as: UTF8.self))
        default:
            return .unix(path: "")
        }
    }

    private static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `getsockname` (local) or `getpeername` (peer) of `fd`.
    static func address(of fd: Int32, peer: Bool) -> BrokerEndpoint? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length)
            }
        }
        guard result == 0 else { return nil }
        return withUnsafeBytes(of: &storage) { raw -> BrokerEndpoint? in
            guard let base = raw.baseAddress else { return nil }
            return endpoint(base, length: length)
        }
    }

    /// A non-blocking, close-on-exec stream socket for `endpoint`'s family.
    static func makeSocket(for endpoint: BrokerEndpoint) throws(Failure) -> Int32 {
        let family: Int32
        switch endpoint {
        case .tcp: family = endpoint.isIPv6 ? AF_INET6 : AF_INET
        case .unix: family = AF_UNIX
        case .pair: throw Failure(errno: EAFNOSUPPORT)
        }
        let fd = socket(
            family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw Failure(errno: errno) }
        return fd
    }

    /// Binds and listens on `endpoint`; returns the fd and the bound address.
    static func listen(on endpoint: BrokerEndpoint, backlog: Int) throws(Failure) -> (fd: Int32, bound: BrokerEndpoint)
    {
        let fd = try makeSocket(for: endpoint)
        var one: Int32 = 1
        if case .tcp = endpoint {
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if endpoint.isIPv6 {
                _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
            }
        }
        let bound: Int32
        do {
            bound = try withAddress(endpoint) { Glibc.bind(fd, $0, $1) }
        } catch {
            _ = close(fd)
            throw error
        }
        guard bound == 0, Glibc.listen(fd, Int32(clamping: backlog)) == 0 else {
            let failure = errno
            _ = close(fd)
            throw Failure(errno: failure)
        }
        return (fd, address(of: fd, peer: false) ?? endpoint)
    }

    /// Starts a non-blocking connect: the fd and whether it is already connected.
    static func startConnect(to endpoint: BrokerEndpoint) throws(Failure) -> (fd: Int32, connected: Bool) {
        let fd = try makeSocket(for: endpoint)
        let result: Int32
        do {
            result = try withAddress(endpoint) { Glibc.connect(fd, $0, $1) }
        } catch {
            _ = close(fd)
            throw error
        }
        if result == 0 { return (fd, true) }
        let failure = errno
        if failure == EINPROGRESS || failure == EINTR { return (fd, false) }
        _ = close(fd)
        throw Failure(errno: failure)
    }

    /// A close-on-exec unix stream socketpair.
    static func socketPair() throws(Failure) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { throw Failure(errno: errno) }
        return (fds[0], fds[1])
    }
}
