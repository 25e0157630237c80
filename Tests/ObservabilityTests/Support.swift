@testable import CoreMetrics
@_spi(Internals) import EndpointMux
import Glibc
@testable import LegacyAdapters
import Logging
import MetricsTestKit
import Synchronization

/// One in-memory metrics backend for this process, bootstrapped on first use (tests run
/// serially in one process; each test filters by a `service` dimension of its own).
enum SharedMetrics {
    static let backend: TestMetrics = {
        let metrics = TestMetrics()
        MetricsSystem.bootstrapInternal(metrics)
        return metrics
    }()
}

/// Log entries kept in memory.
final class LogCapture: Sendable {
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private let entries = Mutex<[Entry]>([])

    var all: [Entry] { entries.withLock { $0 } }

    /// A logger (at `debug`) that appends here.
    func logger(label: String = "obs-test") -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self) }
        logger.logLevel = .debug
        return logger
    }

    fileprivate func append(_ entry: Entry) { entries.withLock { $0.append(entry) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var flat: [String: String] = [:]
            for (key, value) in self.metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
                flat[key] = "\(value)"
            }
            capture.append(Entry(level: event.level, message: event.message.description, metadata: flat))
        }
    }
}

/// Waits (sleeping between looks) until `condition` holds or `timeout` passed.
func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return true
}

/// A unique socket path under /tmp.
func temporarySocketPath(_ name: String) -> String {
    "/tmp/emx-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
}

/// A blocking client on a unix socket (closed on deinit).
final class RawClient {
    let fd: Int32

    init(path: String) throws {
        fd = try UnixSocket.connect(to: path).release()
    }

    /// A client on a socket not connected yet (see ``connect(to:)``).
    init(taking fd: Int32) { self.fd = fd }

    /// Connects to `path`; false on failure.
    func connect(to path: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }

    deinit { close(fd) }

    func write(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }

    /// Reads up to `count` bytes until `deadline` (fewer on EOF).
    func read(count: Int, deadline: ContinuousClock.Instant) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < count {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return out }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let milliseconds = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
            let ready = poll(&pfd, 1, Int32(clamping: max(1, milliseconds)))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - out.count), 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return out }
            out += chunk[..<n]
        }
        return out
    }

    /// One v1 frame; nil on EOF, garbage or `deadline`.
    func readFrame(deadline: ContinuousClock.Instant = .now + .seconds(5)) -> Frame? {
        let header = read(count: 5, deadline: deadline)
        guard header.count == 5, header[0] == 0x01 else { return nil }
        let length = Int(header[1]) | Int(header[2]) << 8 | Int(header[3]) << 16 | Int(header[4]) << 24
        let body = read(count: length, deadline: deadline)
        guard body.count == length else { return nil }
        return try? Frame(parsingBody: body)
    }

    /// Whether the peer ends its output (EOF) before `deadline`, discarding bytes.
    func readsEndOfFile(deadline: ContinuousClock.Instant = .now + .seconds(5)) -> Bool {
        while ContinuousClock.now < deadline {
            let bytes = read(count: 1, deadline: deadline)
            if bytes.isEmpty { return ContinuousClock.now < deadline }
        }
        return false
    }
}
