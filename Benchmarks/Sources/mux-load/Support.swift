import CEchoServer
import Glibc

/// A failure that ends one case (or the run), with a message for the report.
struct LoadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum Clock {
    /// Monotonic nanoseconds.
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func sleep(milliseconds: Int) {
        var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        var remaining = timespec()
        for _ in 0..<1000 {
            guard nanosleep(&request, &remaining) != 0, errno == EINTR else { return }
            request = remaining
        }
    }
}

/// Environment lookups with defaults.
enum Env {
    static func string(_ key: String) -> String? {
        getenv(key).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    static func int(_ key: String, default value: Int) -> Int {
        string(key).flatMap { Int($0) } ?? value
    }
}

/// Writes a line to standard error (progress and diagnostics; results go to standard out).
func note(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}

/// Formats a number with at most `decimals` decimals, no thousands separators.
func formatted(_ value: Double, decimals: Int = 2) -> String {
    guard value.isFinite else { return "0" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int((abs(value) * scale).rounded())
    let whole = scaled / Int(scale)
    let fraction = scaled % Int(scale)
    var text = (value < 0 && scaled != 0 ? "-" : "") + String(whole)
    if decimals > 0 {
        let digits = String(fraction)
        text += "." + String(repeating: "0", count: decimals - digits.count) + digits
    }
    return text
}

/// A joinable POSIX thread (the load generator uses plain threads: one per connection).
final class JoinableThread: @unchecked Sendable {
    private var handle: pthread_t = 0
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    init(_ body: @escaping @Sendable () -> Void) throws {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let created = pthread_create(
            &handle, nil,
            { argument in
                guard let argument else { return nil }
                Unmanaged<Box>.fromOpaque(argument).takeRetainedValue().body()
                return nil
            }, box)
        guard created == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw LoadError("pthread_create failed: \(created)")
        }
    }

    func join() { pthread_join(handle, nil) }
}

// MARK: - Unix stream sockets (blocking, with timeouts so no call waits forever)

enum UnixSocket {
    /// Connects to `path`; `connect` itself is bounded by the send timeout (a full
    /// listener backlog makes a unix `connect` block).
    static func connect(_ path: String, timeoutMilliseconds: Int = 5000) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw LoadError("socket: errno \(errno)") }
        setTimeouts(fd, milliseconds: timeoutMilliseconds)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw LoadError("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw LoadError("connect \(path): errno \(code)")
        }
        return fd
    }

    static func setTimeouts(_ fd: Int32, milliseconds: Int) {
        var timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            throw LoadError(
                n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? "write timed out" : "write failed: errno \(errno)")
        }
    }

    /// One `recv`; throws on EOF, error or timeout.
    static func readSome(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n > 0 { return n }
            if n == 0 { throw LoadError("server closed the connection") }
            if errno == EINTR { continue }
            throw LoadError(errno == EAGAIN || errno == EWOULDBLOCK ? "read timed out" : "read failed: errno \(errno)")
        }
    }

    /// Reads exactly `count` bytes.
    static func readExactly(_ fd: Int32, count: Int) throws -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var have = 0
        try result.withUnsafeMutableBytes { raw in
            while have < count {
                have += try readSome(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[have...]))
            }
        }
        return result
    }
}

// MARK: - Child processes

/// Children of this run: killed on every way out (and by PR_SET_PDEATHSIG if we die).
final class Children: @unchecked Sendable {
    static let shared = Children()
    private var mutex = pthread_mutex_t()
    private var pids: Set<pid_t> = []

    private init() { pthread_mutex_init(&mutex, nil) }

    private var stopping = false

    /// Whether ``stopAll()`` has begun (a signal or the watchdog is ending the run).
    var isStopping: Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return stopping
    }

    /// Registers a child; false once ``stopAll()`` has begun (the caller must stop it).
    func add(_ pid: pid_t) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard !stopping else { return false }
        pids.insert(pid)
        return true
    }
    func remove(_ pid: pid_t) { pthread_mutex_lock(&mutex); pids.remove(pid); pthread_mutex_unlock(&mutex) }

    /// Stops every child still registered from any thread: SIGTERM (servers remove their
    /// sockets), up to one second to exit, then SIGKILL. For the signal and watchdog paths.
    func stopAll() {
        pthread_mutex_lock(&mutex)
        stopping = true
        var remaining = pids
        pids.removeAll()
        pthread_mutex_unlock(&mutex)
        for pid in remaining { kill(pid, SIGTERM) }
        for _ in 0..<100 where !remaining.isEmpty {
            var status: Int32 = 0
            remaining = remaining.filter { waitpid($0, &status, WNOHANG) != $0 }
            if !remaining.isEmpty { Clock.sleep(milliseconds: 10) }
        }
        for pid in remaining {
            var status: Int32 = 0
            kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
        }
    }
}

/// One server process started for the run, its output in a log file.
final class ServerProcess {
    let label: String
    let pid: pid_t
    let logPath: String
    private var reaped = false

    init(label: String, executable: String, arguments: [String], logPath: String) throws {
        self.label = label
        self.logPath = logPath
        guard access(executable, X_OK) == 0 else {
            throw LoadError(
                "no executable \(executable): run `swift build -c release --product muxctl` and `--product kvd` at the top, or set ENDPOINTMUX_BIN"
            )
        }
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard logFD >= 0 else { throw LoadError("cannot create \(logPath): errno \(errno)") }
        defer { close(logFD) }
        let argv = ([executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        let pid = (argv + [nil]).withUnsafeBufferPointer { cecho_spawn(executable, $0.baseAddress, logFD) }
        guard pid > 0 else { throw LoadError("cannot start \(executable): errno \(errno)") }
        guard Children.shared.add(pid) else {
            kill(pid, SIGTERM)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            throw LoadError("stopping: \(label) not started")
        }
        self.pid = pid
    }

    /// The log so far.
    func log() -> String {
        guard let file = fopen(logPath, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether the process has exited (reaps it).
    var hasExited: Bool {
        if reaped { return true }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { reaped = true; Children.shared.remove(pid) }
        return reaped
    }

    /// Waits (bounded) until `predicate` holds for the log; throws with the log otherwise.
    func waitForLog(timeoutMilliseconds: Int = 30_000, _ predicate: (String) -> Bool) throws -> String {
        let deadline = Clock.now() + UInt64(timeoutMilliseconds) * 1_000_000
        while Clock.now() < deadline {
            let text = log()
            if predicate(text) { return text }
            if hasExited { throw LoadError("\(label) exited during start-up: \(text)") }
            Clock.sleep(milliseconds: 10)
        }
        throw LoadError("\(label) not ready after \(timeoutMilliseconds) ms: \(log())")
    }

    /// SIGTERM, a bounded wait, then SIGKILL.
    func stop() {
        guard !hasExited else { return }
        kill(pid, SIGTERM)
        for _ in 0..<500 where !hasExited { Clock.sleep(milliseconds: 10) }
        if !hasExited {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            reaped = true
            Children.shared.remove(pid)
        }
    }

    /// Resident set size in bytes (VmRSS of /proc/PID/status).
    func residentBytes() -> Int? {
        guard let text = readSmallFile("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.split(separator: " ").compactMap { Int($0) }
            return digits.first.map { $0 * 1024 }
        }
        return nil
    }

    /// Number of open file descriptors (/proc/PID/fd).
    func openFileDescriptorCount() -> Int? {
        guard let directory = opendir("/proc/\(pid)/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
            if first != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }
}

func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < 1 << 20 {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Runs a command to completion (bounded), for housekeeping such as removing the run's directory.
func runQuietly(_ executable: String, _ arguments: [String], timeoutMilliseconds: Int = 10_000) {
    let logFD = open("/dev/null", O_WRONLY | O_CLOEXEC)
    defer { close(logFD) }
    let argv = ([executable] + arguments).map { strdup($0) }
    defer { argv.forEach { free($0) } }
    let pid = (argv + [nil]).withUnsafeBufferPointer { cecho_spawn(executable, $0.baseAddress, logFD) }
    guard pid > 0 else { return }
    var status: Int32 = 0
    for _ in 0..<(timeoutMilliseconds / 10) {
        if waitpid(pid, &status, WNOHANG) == pid { return }
        Clock.sleep(milliseconds: 10)
    }
    kill(pid, SIGKILL)
    _ = waitpid(pid, &status, 0)
}
