import Foundation
@testable import LegacyAdapters

/// What `/proc` says about a child daemon: open fds and CPU time.
enum DaemonStats {
    /// Open fds of `pid` (entries of `/proc/PID/fd`); nil when it cannot be read.
    static func openFileDescriptors(_ pid: Int32) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }

    /// User + system CPU time of `pid` so far (from `/proc/PID/stat`).
    static func cpuTime(_ pid: Int32) -> Duration? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after "(comm)": state is field 3, utime 14, stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        let ticks = max(1, sysconf(Int32(_SC_CLK_TCK)))
        return .milliseconds((user + system) * 1000 / ticks)
    }

    /// The share of one CPU `pid` used over `interval` of wall time (0.0–1.0 per core).
    static func cpuShare(_ pid: Int32, over interval: Duration) async -> Double? {
        guard let before = cpuTime(pid) else { return nil }
        let start = ContinuousClock.now
        try? await Task.sleep(for: interval)
        guard let after = cpuTime(pid) else { return nil }
        let wall = start.duration(to: .now)
        return (after - before) / wall
    }

    /// Waits (bounded) until `pid` holds at most `count` fds; returns the last count seen.
    static func waitForFileDescriptors(_ pid: Int32, atMost count: Int, timeout: Duration) async -> Int? {
        let deadline = ContinuousClock.now + timeout
        var seen = openFileDescriptors(pid)
        while let current = seen, current > count, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            seen = openFileDescriptors(pid)
        }
        return seen
    }
}

/// A raw client socket for scripted conversations (owned; closed on deinit).
final class ScriptedClient {
    let fd: Int32

    init(socketPath: String) throws {
        fd = try UnixSocket.connect(to: socketPath).release()
    }

    deinit { close(fd) }

    /// Writes all of `bytes` (blocking socket).
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

    func write(_ text: String) { write(Array(text.utf8)) }

    /// `shutdown(SHUT_WR)`: the daemon reads end of input.
    func halfClose() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads until EOF or `deadline`; `sawEOF` false means the deadline passed (or an error).
    func readToEnd(deadline: ContinuousClock.Instant) -> (bytes: [UInt8], sawEOF: Bool) {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return (out, false) }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(
                &pfd, 1,
                Int32(
                    clamping: max(
                        1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { out += chunk[..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            return (out, n == 0)
        }
    }

    /// Reads exactly `count` bytes (fewer on EOF, an error or `deadline`).
    func read(count: Int, deadline: ContinuousClock.Instant) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < count {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return out }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(
                &pfd, 1,
                Int32(
                    clamping: max(
                        1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            guard ready > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - out.count), 0) }
            guard n > 0 else { return out }
            out += chunk[..<n]
        }
        return out
    }

    /// Reads one v1 frame (`[0x01][u32 LE length][body]`); nil on EOF, garbage or `deadline`.
    func readFrame(deadline: ContinuousClock.Instant) -> [UInt8]? {
        let header = read(count: 5, deadline: deadline)
        guard header.count == 5, header[0] == 0x01 else { return nil }
        let length = Int(header[1]) | Int(header[2]) << 8 | Int(header[3]) << 16 | Int(header[4]) << 24
        let body = read(count: length, deadline: deadline)
        return body.count == length ? header + body : nil
    }

    /// Reads until `terminator` at the end, EOF, or `deadline`.
    func read(until terminator: UInt8, deadline: ContinuousClock.Instant) -> [UInt8] {
        var out: [UInt8] = []
        var byte: UInt8 = 0
        while out.last != terminator {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return out }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(
                &pfd, 1,
                Int32(
                    clamping: max(
                        1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            guard ready > 0 else { continue }
            let n = recv(fd, &byte, 1, 0)
            guard n == 1 else { return out }
            out.append(byte)
        }
        return out
    }
}
