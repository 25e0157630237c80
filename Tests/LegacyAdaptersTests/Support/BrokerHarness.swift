import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
@testable import LegacyAdapters

// Support for BrokerTests: a broker on a temporary socket, blocking socket helpers run on
// dedicated threads (never Task.sleep: it makes the runtime open a timer fd, which the
// fd-leak checks would count), and a raw identity probe.

/// A broker on a temporary socket path; `stop()` removes the directory.
final class BrokerFixture: @unchecked Sendable {
    let directory: String
    let socketPath: String
    let server: BrokerServer

    init(
        rules: [String] = ["listen=tcp:127.0.0.1:*", "connect=tcp:127.0.0.1:*", "pair", "listen=unix:/tmp/*"],
        uids: Set<UInt32> = [UInt32(getuid())], limits: BrokerLimits = BrokerLimits()
    ) throws {
        directory = try makeTemporaryDirectory()
        socketPath = directory + "/broker.sock"
        server = try BrokerServer(
            socketPath: socketPath, policy: try BrokerPolicy(allowing: rules, allowedUIDs: uids),
            limits: limits, identity: testIdentity)
    }

    func client() throws -> BrokerClient { try BrokerClient(socketPath: socketPath) }

    func stop() {
        server.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Waits (on a dedicated thread) until `condition` holds for the broker's counts.
    func waitUntil(
        timeout: Duration = .seconds(10), _ condition: @escaping @Sendable (BrokerServer.Statistics) -> Bool
    )
        async throws -> Bool
    {
        let server = self.server
        return try await onDedicatedThread {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if condition(server.statistics()) { return true }
                usleep(5_000)
            }
            return condition(server.statistics())
        }
    }
}

/// A blocking TCP listener of the test's own on 127.0.0.1 (port 0: any).
func makeTCPListener(backlog: Int32 = 16) throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw FixtureError(operation: "socket", errno: errno) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(fd, backlog) == 0 else {
        let failure = errno
        close(fd)
        throw FixtureError(operation: "bind/listen", errno: failure)
    }
    guard case let .tcp(_, port)? = BrokerSockets.address(of: fd, peer: false) else {
        close(fd)
        throw FixtureError(operation: "getsockname", errno: EINVAL)
    }
    return (fd, port)
}

/// A TCP connect to 127.0.0.1:`port`; non-blocking ones return at once (in progress).
func connectTCP(port: UInt16, nonBlocking: Bool = false) throws -> Int32 {
    var flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    if nonBlocking { flags |= Int32(SOCK_NONBLOCK.rawValue) }
    let fd = socket(AF_INET, flags, 0)
    guard fd >= 0 else { throw FixtureError(operation: "socket", errno: errno) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard result == 0 || (nonBlocking && errno == EINPROGRESS) else {
        let failure = errno
        close(fd)
        throw FixtureError(operation: "connect", errno: failure)
    }
    return fd
}

/// A port nothing listens on (bound once, then closed).
func closedTCPPort() throws -> UInt16 {
    let (fd, port) = try makeTCPListener()
    close(fd)
    return port
}

/// Reads until end of file (blocking), at most `limit` bytes.
func readToEnd(_ fd: Int32, limit: Int = 1 << 20) -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return bytes
}

/// Reads exactly `count` bytes (blocking); fewer at end of file.
func readExactly(_ fd: Int32, _ count: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: count)
    while bytes.count < count {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, count - bytes.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return bytes
}

/// Echoes what arrives on `fd` until end of file, then closes it (blocking).
func echoUntilEnd(_ fd: Int32) {
    defer { close(fd) }
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        guard sendAll(fd, Array(chunk[..<n])) else { return }
    }
}

/// Sends every byte with `MSG_NOSIGNAL` (blocking); false on an error.
@discardableResult
func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        offset += n
    }
    return true
}

/// One identity probe on the broker's socket: the round trip, and whether the answer
/// validated against the probe (nonce, ids, the identity's pid).
func probeRoundTrip(_ socketPath: String, timeout: Duration = .seconds(2)) throws -> (Duration, Bool) {
    let start = ContinuousClock.now
    let deadline = start + timeout
    let client = try FrameClient(socketPath: socketPath, connectDeadline: deadline)
    let request = ProbeRequest.random()
    try client.write(try request.frame.encoded(), deadline: deadline)
    let answer = try client.readFrame(deadline: deadline)
    let elapsed = start.duration(to: .now)
    let valid =
        (try? ProbeResponse(validating: answer, for: request)).map { $0.identity.pid == testIdentity.pid } ?? false
    return (elapsed, valid)
}

/// The broker error a call failed with, or nil (also nil when it succeeded).
func brokerError(_ error: any Error) -> BrokerError? {
    (error as? EndpointMuxError)?.rpcError.flatMap { BrokerError($0) }
}
