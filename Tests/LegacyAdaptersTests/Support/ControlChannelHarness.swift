import CSocketShims
import Dispatch
@_spi(Internals) import EndpointMux
import Foundation
import Testing
@testable import LegacyAdapters

// Support for ControlChannelTests: a server-side ConnectionDriver on one end of a real
// socketpair (or an accepted connection), muxctl serve's control contract for it, a raw
// JSON-FD reader for the client side, exact wire texts, and a child-process runner.

/// The identity the test muxes prove (no test probes it).
let controlTestIdentity = DaemonIdentity(
    pid: 1, executablePath: "/x", executableHash: [UInt8](repeating: 0, count: 32), bootID: "",
    endpoint: IPCEndpoint(namespaceID: "t", path: "/t"), startedAtUnixMilliseconds: 1)

/// A mux that accepts control messages, serves no lane, and enforces `limits`.
func controlTestMux(_ limits: MuxLimits = MuxLimits()) -> EndpointMux {
    EndpointMux(identity: controlTestIdentity, servedProtocols: [PayloadProtocol](), limits: limits)
}

// MARK: - muxctl serve's control contract

/// `muxctl serve`'s control methods (Examples/muxctl/EchoControlMethods.swift), re-implemented
/// for in-process servers, plus `sizes`:
/// - `echo`: result = params, or `null` when absent;
/// - `readFds`: `{"count":N,"contents":[…]}`;
/// - `sizes`: `{"count":N,"sizes":[…]}` (byte counts of the fds' contents);
/// - `createFds` `{"count":N,"prefix":P}`: `{"count":N}` with N pipe read ends, pipe i holding P + i;
/// - `stats`: `{"requests":R,"notifications":n,"notificationFds":f}`;
/// - anything else: -32601; notifications are counted (and their fds closed); responses are ignored.
enum TestControlMethods {
    /// The reply to `message` whose fds held `contents` (already read and closed), with the
    /// fds to send along (owned by the caller); nil when nothing is to be sent.
    static func answer(
        _ message: ControlMessage, contents: [[UInt8]], counters: inout [String: Int]
    )
        -> (message: ControlMessage, fileDescriptors: [Int32])?
    {
        switch message {
        case .notification:
            counters["notifications", default: 0] += 1
            counters["notificationFds", default: 0] += contents.count
            return nil
        case .response:
            return nil
        case let .request(request):
            counters["requests", default: 0] += 1
            func result(_ value: JSONValue, _ fds: [Int32] = []) -> (ControlMessage, [Int32]) {
                (.response(ControlResponse(id: request.id, result: value)), fds)
            }
            func failure(_ error: JSONRPCErrorObject) -> (ControlMessage, [Int32]) {
                (.response(ControlResponse(id: request.id, error: error)), [])
            }
            switch request.method {
            case "echo":
                return result(request.params ?? .null)
            case "readFds":
                return result([
                    "count": .number(JSONNumber(contents.count)),
                    "contents": .array(contents.map { .string(String(decoding: $0, as: UTF8.self)) }),
                ])
            case "sizes":
                return result([
                    "count": .number(JSONNumber(contents.count)),
                    "sizes": .array(contents.map { .number(JSONNumber($0.count)) }),
                ])
            case "createFds":
                guard let count = request.params?["count"]?.numberValue?.int64, (0...4096).contains(count) else {
                    return failure(
                        JSONRPCErrorObject(
                            code: JSONRPCErrorObject.invalidParamsCode, message: "count must be 0...4096"))
                }
                let prefix = request.params?["prefix"]?.stringValue ?? ""
                var fds: [Int32] = []
                for index in 0..<Int(count) {
                    guard let fd = try? makePipe(holding: prefix + String(index)) else {
                        fds.forEach { close($0) }
                        return failure(
                            JSONRPCErrorObject(code: JSONRPCErrorObject.internalErrorCode, message: "pipe failed"))
                    }
                    fds.append(fd)
                }
                return result(["count": .number(JSONNumber(Int(count)))], fds)
            case "stats":
                return result([
                    "requests": .number(JSONNumber(counters["requests", default: 0])),
                    "notifications": .number(JSONNumber(counters["notifications", default: 0])),
                    "notificationFds": .number(JSONNumber(counters["notificationFds", default: 0])),
                ])
            default:
                return failure(.methodNotFound())
            }
        }
    }

    /// The same contract as a ``ServiceServer`` control handler.
    static let serviceHandler: ServiceServer.ControlHandler = { received, context in
        var fds = received.takeFileDescriptors()
        var contents: [[UInt8]] = []
        while let fd = fds.popFirst() { contents.append(readEverything(fd.rawValue)) }
        guard let reply = answer(received.message, contents: contents, counters: &context.counters) else { return nil }
        return OutgoingControlMessage(reply.message, fileDescriptors: queue(owning: reply.fileDescriptors))
    }
}

/// Everything `fd` holds: regular files (memfds too) by `pread` from offset 0, pipes read
/// to end of file without blocking (a pipe whose writer is still open yields what is
/// buffered); anything else yields nothing.
func readEverything(_ fd: Int32, limit: Int = 8 << 20) -> [UInt8] {
    var st = stat()
    guard fstat(fd, &st) == 0 else { return [] }
    let kind = st.st_mode & S_IFMT
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    if kind == S_IFREG {
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(bytes.count)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[..<n]
        }
    } else if kind == S_IFIFO {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[..<n]
        }
    }
    return bytes
}

/// The file type of `fd`: "file", "pipe", "socket" or "other".
func fileKind(_ fd: Int32) -> String {
    var st = stat()
    guard fstat(fd, &st) == 0 else { return "closed" }
    switch st.st_mode & S_IFMT {
    case S_IFREG: return "file"
    case S_IFIFO: return "pipe"
    case S_IFSOCK: return "socket"
    default: return "other"
    }
}

// MARK: - The server side

/// What the server side of a connection saw.
struct ServerLog: Sendable {
    /// One control message and its fds' contents and kinds (the fds were read, then closed).
    struct Seen: Sendable, Equatable {
        var message: ControlMessage
        var contents: [[UInt8]]
        var kinds: [String]
        var texts: [String] { contents.map { String(decoding: $0, as: UTF8.self) } }
    }

    var seen: [Seen] = []
    var ends: [ConnectionEnd] = []
    /// Events other than control messages and the end (there should be none).
    var unexpected: [String] = []
    /// The harness stopped the loop at a deadline.
    var timedOut = false

    var methods: [String?] { seen.map(\.message.method) }
    var fdCounts: [Int] { seen.map(\.contents.count) }
}

/// A ``ConnectionDriver`` serving the server end of a real connection the way a daemon
/// would: `poll(2)` on the driver's interest, ``ConnectionDriver/handle(revents:now:)``, each control
/// message's fds read and closed, replies per ``TestControlMethods`` (when `answers`),
/// and the fd closed on ``ConnectionEvent/closed(_:)`` (after the batch it came in).
///
/// Either drive it by hand with ``step(timeout:)`` from one thread, or ``start()`` its own
/// thread; ``finish(timeout:)`` half-closes the client, waits for the server to end (or
/// gives up at the deadline), closes both ends and returns the log.
final class DriverHarness: @unchecked Sendable {
    /// The client's end (-1 when the client is elsewhere, e.g. a ``ControlClient``).
    let clientFD: Int32
    /// The server's end, borrowed by the driver.
    let serverFD: Int32
    private let driver: ConnectionDriver
    private let answers: Bool
    private let lock = NSLock()
    private var log = ServerLog()
    private var counters: [String: Int] = [:]
    private var serverOpen = true
    private var clientOpen: Bool
    private var stopRequested = false
    private var thread: Thread?
    private let ended = DispatchSemaphore(value: 0)

    /// A harness over a new socketpair.
    convenience init(
        limits: MuxLimits = MuxLimits(), options: ConnectionOptions = ConnectionOptions(),
        answers: Bool = true
    ) throws {
        let (server, client) = try makeSocketPair()
        try self.init(serverFD: server, clientFD: client, limits: limits, options: options, answers: answers)
    }

    /// A harness owning `serverFD` (made non-blocking) and `clientFD` (may be -1).
    init(
        serverFD: Int32, clientFD: Int32, limits: MuxLimits = MuxLimits(),
        options: ConnectionOptions = ConnectionOptions(), answers: Bool = true
    ) throws {
        do {
            try SocketIO.setNonBlocking(serverFD, true)
        } catch {
            close(serverFD)
            if clientFD >= 0 { close(clientFD) }
            throw error
        }
        self.serverFD = serverFD
        self.clientFD = clientFD
        self.clientOpen = clientFD >= 0
        self.answers = answers
        self.driver = ConnectionDriver(borrowing: serverFD, mux: controlTestMux(limits), options: options)
    }

    deinit {
        if serverOpen { close(serverFD) }
        if clientOpen { close(clientFD) }
    }

    /// A copy of the log so far.
    func snapshot() -> ServerLog { lock.withLock { log } }

    /// Whether the server has closed its end.
    var serverFinished: Bool { lock.withLock { !serverOpen } }

    /// One `poll(2)` round of at most `timeout` on the driver's interest, then the one
    /// driver call; the answers it queues leave on the next call, made at once (as a
    /// daemon's loop would, polling again on the interest). Returns false once the server
    /// has closed its end.
    @discardableResult
    func step(timeout: Duration) -> Bool {
        guard lock.withLock({ serverOpen }) else { return false }
        let now = ContinuousClock.now
        let interest = driver.interest
        let limit = SocketIO.pollMilliseconds(until: now + timeout, now: now)
        let wait = min(limit, interest.pollTimeout(now: now) < 0 ? limit : interest.pollTimeout(now: now))
        var descriptor = pollfd(fd: serverFD, events: interest.pollEvents, revents: 0)
        let ready = poll(&descriptor, 1, wait)
        guard handle(driver.handle(revents: ready > 0 ? descriptor.revents : 0)) else { return false }
        guard driver.interest.write else { return true }
        return handle(driver.handle(revents: 0))
    }

    /// Steps until `condition` holds for the log, the server ends, or `timeout` passes;
    /// returns whether `condition` held.
    @discardableResult
    func run(until condition: (ServerLog) -> Bool, timeout: Duration = .seconds(10)) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition(snapshot()) {
            guard ContinuousClock.now < deadline, step(timeout: .milliseconds(20)) else { return condition(snapshot()) }
        }
        return true
    }

    /// Runs the loop on a thread of its own until the server ends, ``finish(timeout:)``
    /// stops it, or `hardLimit` passes.
    func start(hardLimit: Duration = .seconds(90)) {
        let thread = Thread { [self] in
            let deadline = ContinuousClock.now + hardLimit
            while !lock.withLock({ stopRequested }) {
                if ContinuousClock.now >= deadline {
                    lock.withLock { log.timedOut = true }
                    break
                }
                if !step(timeout: .milliseconds(20)) { break }
            }
            closeServer()
            ended.signal()
        }
        self.thread = thread
        thread.start()
    }

    /// Shuts down the client's sending side (the server then reads end of file).
    func shutdownClientWrites() {
        if lock.withLock({ clientOpen }) { shutdown(clientFD, Int32(SHUT_WR)) }
    }

    /// Half-closes the client, waits up to `timeout` for the server to end, closes both
    /// ends, and returns the log (``ServerLog/timedOut`` when the server had to be stopped).
    @discardableResult
    func finish(timeout: Duration = .seconds(10)) -> ServerLog {
        shutdownClientWrites()
        if thread != nil {
            let milliseconds = Int(
                timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            if ended.wait(timeout: .now() + .milliseconds(milliseconds)) == .timedOut {
                lock.withLock {
                    stopRequested = true
                    log.timedOut = true
                }
                ended.wait()
            }
            thread = nil
        } else {
            let deadline = ContinuousClock.now + timeout
            while step(timeout: .milliseconds(20)) {
                if ContinuousClock.now >= deadline {
                    lock.withLock { log.timedOut = true }
                    break
                }
            }
            closeServer()
        }
        lock.withLock {
            if clientOpen {
                close(clientFD)
                clientOpen = false
            }
        }
        return snapshot()
    }

    private func closeServer() {
        lock.withLock {
            if serverOpen {
                close(serverFD)
                serverOpen = false
            }
        }
    }

    /// Records and answers `events`; closes the server on `.closed`. False once closed.
    private func handle(_ events: [ConnectionEvent]) -> Bool {
        var closed = false
        for event in events {
            switch event {
            case let .control(received):
                var fds = received.takeFileDescriptors()
                var contents: [[UInt8]] = []
                var kinds: [String] = []
                while let fd = fds.popFirst() {
                    kinds.append(fileKind(fd.rawValue))
                    contents.append(readEverything(fd.rawValue))
                }
                lock.withLock { log.seen.append(.init(message: received.message, contents: contents, kinds: kinds)) }
                if answers, !closed,
                    let reply = TestControlMethods.answer(received.message, contents: contents, counters: &counters)
                {
                    driver.send(reply.message, fileDescriptors: queue(owning: reply.fileDescriptors))
                }
            case let .closed(end):
                lock.withLock { log.ends.append(end) }
                closed = true
            case .payload, .legacyTakeover, .legacyMessage:
                lock.withLock { log.unexpected.append(String(describing: event)) }
            }
        }
        if closed { closeServer() }
        return !closed
    }
}

/// A ``ControlClient`` connected through a real listening socket to a started
/// ``DriverHarness`` (the listener is gone by the time this returns).
func connectedControlClient(limits: MuxLimits = MuxLimits()) throws -> (ControlClient, DriverHarness) {
    let directory = try makeTemporaryDirectory()
    defer { rmdir(directory) }
    let path = directory + "/c.sock"
    let listener = try UnixSocket.bindListener(path: path, serviceName: "fdtest")
    defer { unlink(path) }
    let client = try ControlClient(socketPath: path)
    guard try SocketIO.waitUntilReadable(listener.rawValue, timeout: .seconds(5)) else {
        throw FixtureError(operation: "accept (timed out)", errno: ETIMEDOUT)
    }
    let accepted = accept(listener.rawValue, nil, nil)
    guard accepted >= 0 else { throw FixtureError(operation: "accept", errno: errno) }
    _ = fcntl(accepted, F_SETFD, FD_CLOEXEC)
    listener.close()
    let harness = try DriverHarness(serverFD: accepted, clientFD: -1, limits: limits)
    harness.start()
    return (client, harness)
}

/// A new empty directory under /tmp.
func makeTemporaryDirectory() throws -> String {
    var template = Array("/tmp/emx-fdt-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else { throw FixtureError(operation: "mkdtemp", errno: errno) }
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

// MARK: - The client side

/// Writes `bytes` with `fds` attached to the first `sendmsg` (the rest, if the kernel took
/// only part, in plain writes), then closes `fds`.
func sendRaw(_ fd: Int32, _ bytes: [UInt8], fds: [Int32] = []) throws {
    defer { fds.forEach { close($0) } }
    guard !bytes.isEmpty else { return }
    let written = try bytes.withUnsafeBytes { try SocketIO.send(to: fd, bytes: $0, fileDescriptors: fds) } ?? 0
    if written < bytes.count { try writeAll(fd, Array(bytes[written...])) }
}

/// ``sendRaw(_:_:fds:)`` of UTF-8 text.
func sendRaw(_ fd: Int32, _ text: String, fds: [Int32] = []) throws {
    try sendRaw(fd, Array(text.utf8), fds: fds)
}

/// Sends `messages` (each with its fds, `fds` set from their count) through an
/// ``OutboundQueue`` with the jsonrpc-fdpass batching, starting at `maxPerSendmsg` fds per
/// `sendmsg`; returns the limit the queue ended with (250 after Linux refused 500).
@discardableResult
func sendQueued(_ fd: Int32, _ messages: [(ControlMessage, [Int32])], maxPerSendmsg: Int = 500) throws -> Int {
    var outbound = OutboundQueue(maxFileDescriptorsPerSendmsg: maxPerSendmsg)
    for (message, fds) in messages {
        outbound.enqueue(message.encoded(fileDescriptorCount: fds.count), fileDescriptors: queue(owning: fds))
    }
    try outbound.flushBlocking(to: fd, deadline: .now + .seconds(30))
    return outbound.maxFileDescriptorsPerSendmsg
}

/// A JSON-FD receiver for the test's side of a blocking socket: a ``SocketReceiver`` of
/// `maxFileDescriptors` and a ``ControlDecoder``, logging fds per `recvmsg`.
final class ControlReader {
    private var receiver: SocketReceiver
    private var decoder = ControlDecoder()
    private var buffer: [UInt8] = []
    private var queue = FileDescriptorQueue()
    private var endOfInput = false
    /// Descriptors delivered by each `recvmsg` that returned bytes.
    private(set) var fdCountsPerCall: [Int] = []
    /// Every byte received so far.
    private(set) var bytes: [UInt8] = []

    init(maxFileDescriptors: Int = SocketIO.defaultMaxFileDescriptorsPerReceive) {
        receiver = SocketReceiver(maxFileDescriptors: maxFileDescriptors)
    }

    /// The next message with its fds' contents (the fds are closed); nil at a clean end of stream.
    func next(
        from fd: Int32, timeout: Duration = .seconds(10)
    ) throws -> (message: ControlMessage, contents: [[UInt8]])? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let queued = queue.count
            let eof = endOfInput
            let step = try buffer.withUnsafeBytes { raw in
                try decoder.decode(raw, queuedFileDescriptors: queued, endOfInput: eof)
            }
            switch step {
            case let .message(message, count, consumed):
                buffer.removeFirst(consumed)
                var fds = queue.dequeue(count)
                var contents: [[UInt8]] = []
                while let owned = fds.popFirst() { contents.append(readEverything(owned.rawValue)) }
                return (message, contents)
            case .invalid:
                throw FixtureError(operation: "decode (not JSON-RPC)", errno: EINVAL)
            case .endOfStream:
                return nil
            case .needMoreBytes, .needMoreFileDescriptors:
                if endOfInput { throw EndpointMuxError.peerClosed }
                let remaining = ContinuousClock.now.duration(to: deadline)
                guard remaining > .zero, try SocketIO.waitUntilReadable(fd, timeout: remaining) else {
                    throw EndpointMuxError.timedOut(operation: "test receive")
                }
                var chunk = [UInt8](repeating: 0, count: 65_536)
                let before = queue.count
                let outcome = try chunk.withUnsafeMutableBytes {
                    try receiver.receive(from: fd, into: $0, fileDescriptors: &queue)
                }
                switch outcome {
                case let .received(n):
                    buffer += chunk[..<n]
                    bytes += chunk[..<n]
                    fdCountsPerCall.append(queue.count - before)
                case .endOfFile:
                    endOfInput = true
                case .wouldBlock:
                    continue
                }
            }
        }
    }
}

/// Every message in `bytes` (replies as received), decoded without fds.
func decodeMessages(_ bytes: [UInt8]) throws -> [ControlMessage] {
    var decoder = ControlDecoder()
    var messages: [ControlMessage] = []
    var offset = 0
    while true {
        let step = try bytes[offset...].withUnsafeBytes { raw in
            try decoder.decode(raw, queuedFileDescriptors: 1 << 30, endOfInput: true)
        }
        switch step {
        case let .message(message, _, consumed):
            messages.append(message)
            offset += consumed
        case .endOfStream:
            return messages
        case .invalid, .needMoreBytes, .needMoreFileDescriptors:
            throw FixtureError(operation: "decodeMessages", errno: EINVAL)
        }
    }
}

// MARK: - Exact wire texts

/// The texts our serializer writes (members in Go's order: jsonrpc, method/result/error,
/// params, id, fds), written out by hand so a serializer change shows.
enum Wire {
    static func request(_ method: String, params: String? = nil, id: String, fds: Int? = nil) -> String {
        var text = #"{"jsonrpc":"2.0","method":"\#(method)""#
        if let params { text += #","params":"# + params }
        text += #","id":"# + id
        if let fds { text += #","fds":\#(fds)"# }
        return text + "}"
    }

    static func notification(_ method: String, params: String? = nil, fds: Int? = nil) -> String {
        var text = #"{"jsonrpc":"2.0","method":"\#(method)""#
        if let params { text += #","params":"# + params }
        if let fds { text += #","fds":\#(fds)"# }
        return text + "}"
    }

    static func result(_ result: String, id: String, fds: Int? = nil) -> String {
        var text = #"{"jsonrpc":"2.0","result":"# + result + #","id":"# + id
        if let fds { text += #","fds":\#(fds)"# }
        return text + "}"
    }

    static func error(code: Int, message: String, data: String? = nil, id: String) -> String {
        var text = #"{"jsonrpc":"2.0","error":{"code":\#(code),"message":"# + quoted(message)
        if let data { text += #","data":"# + data }
        return text + #"},"id":"# + id + "}"
    }

    static func methodNotFound(id: String) -> String { error(code: -32601, message: "Method not found", id: id) }

    /// The -32050 answer to a request still waiting for its fds when the connection fails.
    static func fileDescriptorError(id: String, reason: String) -> String {
        error(code: -32050, message: "File Descriptor Error", data: quoted(reason), id: id)
    }

    /// The `rpc.epitaph` notification.
    static func epitaph(status: Int, code: Int = -32050, reason: String) -> String {
        notification("rpc.epitaph", params: #"{"status":\#(status),"code":\#(code),"reason":"# + quoted(reason) + "}")
    }

    static func readFds(_ contents: [String]) -> String {
        #"{"count":\#(contents.count),"contents":["# + contents.map(quoted).joined(separator: ",") + "]}"
    }

    static func stats(requests: Int, notifications: Int, notificationFds: Int) -> String {
        #"{"requests":\#(requests),"notifications":\#(notifications),"notificationFds":\#(notificationFds)}"#
    }

    /// `text` as a JSON string literal (quotes and backslashes escaped; the texts used are printable).
    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

// MARK: - Child processes

/// How a child process ended and what it printed.
struct ChildOutcome: Sendable {
    var exitCode: Int32?
    var signal: Int32?
    var timedOut: Bool
    var stdout: String
    var stderr: String
}

/// Runs `arguments[0]` (an absolute path) with `posix_spawn`, standard input from
/// /dev/null and output to unlinked temporary files; kills it after `timeout`.
func runChild(_ arguments: [String], timeout: Duration) throws -> ChildOutcome {
    let output = try makeTemporaryFile(holding: "")
    defer { close(output) }
    let errors = try makeTemporaryFile(holding: "")
    defer { close(errors) }
    let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
    guard devNull >= 0 else { throw FixtureError(operation: "open /dev/null", errno: errno) }
    defer { close(devNull) }
    for fd in [output, errors] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, devNull, 0)
    posix_spawn_file_actions_adddup2(&actions, output, 1)
    posix_spawn_file_actions_adddup2(&actions, errors, 2)
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
    guard spawned == 0 else { throw FixtureError(operation: "posix_spawn \(arguments[0])", errno: spawned) }

    var status: Int32 = 0
    var timedOut = false
    let deadline = ContinuousClock.now + timeout
    while true {
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid { break }
        if reaped < 0 && errno != EINTR { throw FixtureError(operation: "waitpid", errno: errno) }
        if ContinuousClock.now >= deadline {
            timedOut = true
            kill(pid, SIGKILL)
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            break
        }
        usleep(10_000)
    }
    let termination = status & 0x7F
    return ChildOutcome(
        exitCode: termination == 0 ? (status >> 8) & 0xFF : nil,
        signal: termination == 0 ? nil : termination,
        timedOut: timedOut,
        stdout: String(decoding: readEverything(output), as: UTF8.self),
        stderr: String(decoding: readEverything(errors), as: UTF8.self))
}

/// The muxctl to run: `ENDPOINTMUX_MUXCTL`, else the release build, else the debug build.
func muxctlExecutable() -> String? {
    let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var candidates: [String] = []
    if let configured = ProcessInfo.processInfo.environment["ENDPOINTMUX_MUXCTL"] { candidates.append(configured) }
    candidates.append(root.appendingPathComponent(".build/release/muxctl").path)
    candidates.append(root.appendingPathComponent(".build/debug/muxctl").path)
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}
