import Glibc

/// v1 frames written by hand: `[0x01][u32 LE length][protobuf Frame]`, fields in ascending
/// number and proto3 defaults omitted, as libprotobuf-c and running-process write them
/// (Protos/endpointmux_v1.proto: 1 envelope_version, 2 kind, 3 payload_protocol,
/// 4 payload, 5 request_id). The load generator needs no library of the code it measures.
enum V1 {
    static let request: UInt64 = 0
    static let response: UInt64 = 1

    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    static func frame(kind: UInt64, lane: UInt32, payload: [UInt8], requestID: UInt64) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(payload.count + 32)
        body += [0x08, 0x01]  // envelope_version = 1
        if kind != 0 { body.append(0x10); appendVarint(kind, to: &body) }
        if lane != 0 { body.append(0x18); appendVarint(UInt64(lane), to: &body) }
        if !payload.isEmpty {
            body.append(0x22)
            appendVarint(UInt64(payload.count), to: &body)
            body += payload
        }
        if requestID != 0 { body.append(0x28); appendVarint(requestID, to: &body) }
        let length = UInt32(body.count)
        var frame: [UInt8] = [
            0x01, UInt8(length & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 24),
        ]
        frame.reserveCapacity(5 + body.count)
        frame += body
        return frame
    }
}

/// How replies are delimited on the wire.
enum ReplyFraming: Sendable {
    case v1Frames
    case lines
}

/// Counts complete replies in a byte stream, across reads, and checks each one starts as
/// the expected reply does (so an epitaph or an error line is an error, not a reply).
struct ReplyCounter {
    let framing: ReplyFraming
    /// Frames: the first bytes of the expected body (envelope, kind, lane); lines: the
    /// first byte of the expected line.
    private let expectedPrefix: [UInt8]
    private var headerHave = 0
    private var bodyLength: UInt32 = 0
    private var bodyOffset = 0
    private var inBody = false
    private var atLineStart = true

    init(framing: ReplyFraming, expectedReply: [UInt8]) {
        self.framing = framing
        switch framing {
        case .v1Frames: expectedPrefix = Array(expectedReply.dropFirst(5).prefix(6))
        case .lines: expectedPrefix = Array(expectedReply.prefix(1))
        }
    }

    /// Feeds received bytes; returns the replies they complete.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) throws -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        var completed = 0
        switch framing {
        case .lines:
            var at = 0
            while at < bytes.count {
                if atLineStart, let first = expectedPrefix.first, bytes[at] != first {
                    throw LoadError("unexpected reply line starting with 0x\(String(bytes[at], radix: 16))")
                }
                guard let hit = memchr(base + at, 0x0A, bytes.count - at) else {
                    atLineStart = false
                    break
                }
                completed += 1
                atLineStart = true
                at = base.distance(to: UnsafeRawPointer(hit)) + 1
            }
        case .v1Frames:
            var at = 0
            while at < bytes.count {
                if inBody {
                    if bodyOffset < expectedPrefix.count {
                        guard bytes[at] == expectedPrefix[bodyOffset] else {
                            throw LoadError(
                                "unexpected reply frame (body byte \(bodyOffset) is 0x\(String(bytes[at], radix: 16)); an epitaph?)"
                            )
                        }
                        bodyOffset += 1
                        at += 1
                    } else {
                        let take = min(Int(bodyLength) - bodyOffset, bytes.count - at)
                        bodyOffset += take
                        at += take
                    }
                    if bodyOffset == Int(bodyLength) { inBody = false; completed += 1 }
                    continue
                }
                let byte = bytes[at]
                at += 1
                if headerHave == 0 {
                    guard byte == 0x01 else {
                        throw LoadError("reply is not a v1 frame (first byte 0x\(String(byte, radix: 16)))")
                    }
                    bodyLength = 0
                } else {
                    bodyLength |= UInt32(byte) << (8 * UInt32(headerHave - 1))
                }
                headerHave += 1
                if headerHave == 5 {
                    headerHave = 0
                    bodyOffset = 0
                    guard Int(bodyLength) >= expectedPrefix.count else {
                        throw LoadError("reply frame shorter than expected (\(bodyLength) bytes)")
                    }
                    if bodyLength == 0 { completed += 1 } else { inBody = true }
                }
            }
        }
        return completed
    }
}

/// One kind of traffic against one server: what a request is and what its exact reply is.
struct Workload: Sendable {
    /// Who answers, for diagnostics ("muxctl serve", "C epoll echo", ...).
    let server: String
    let socketPath: String
    /// Requests of one batch (`outstanding` of them are sent back to back).
    let makeBatch: @Sendable (_ outstanding: Int) -> [UInt8]
    /// One request and the exact bytes of its reply: checked on every connection before it is timed.
    let probeRequest: [UInt8]
    let probeReply: [UInt8]
    let framing: ReplyFraming
    /// The server's process, for CPU accounting.
    let pid: pid_t
}

/// One measured run of a workload: throughput and the server's CPU per request.
struct Measurement {
    var requestsPerSecond: Double
    var serverMicrosecondsPerRequest: Double?
}

/// Per-thread results, written by its thread and read after `join`.
final class ThreadResult: @unchecked Sendable {
    var measuredReplies = 0
    var totalReplies = 0
    var measuredNanoseconds: UInt64 = 0
    var error: String?
}

enum LoadGenerator {
    static let ioTimeoutMilliseconds = 10_000
    /// Hard cap on batches per connection and run (the time window ends runs long before).
    static let maxBatchesPerRun = 50_000_000

    /// Opens a connection and checks one request gets exactly its expected reply.
    static func openVerified(_ workload: Workload) throws -> Int32 {
        let fd = try UnixSocket.connect(workload.socketPath, timeoutMilliseconds: ioTimeoutMilliseconds)
        do {
            try workload.probeRequest.withUnsafeBytes { try UnixSocket.writeAll(fd, $0) }
            let reply = try UnixSocket.readExactly(fd, count: workload.probeReply.count)
            guard reply == workload.probeReply else {
                throw LoadError(
                    "\(workload.server) answered \(reply.count) bytes that differ from the expected reply: \(preview(reply)) vs \(preview(workload.probeReply))"
                )
            }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    static func preview(_ bytes: [UInt8]) -> String {
        bytes.prefix(48).map { b in b >= 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16) }
            .joined()
    }

    /// Closed-loop load: `connections` connections, one thread each; each thread writes a
    /// batch of `outstanding` pipelined requests in one write, then reads until all their
    /// replies are complete, and repeats. Batches completing inside the measurement window
    /// (after `warmMilliseconds`, for `measureMilliseconds`) are counted. With one
    /// connection the rate is replies / time spent on counted batches (exact for serial
    /// runs such as the 16 MiB echo); with several, replies / window.
    static func measure(
        _ workload: Workload, connections: Int, outstanding: Int,
        warmMilliseconds: Int, measureMilliseconds: Int
    ) throws -> Measurement {
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for _ in 0..<connections { fds.append(try openVerified(workload)) }
        let batch = workload.makeBatch(outstanding)
        let cpuBefore = workload.pid > 0 ? ServerCPU.microseconds(workload.pid) : nil
        let start = Clock.now()
        let warmEnd = start + UInt64(warmMilliseconds) * 1_000_000
        let measureEnd = warmEnd + UInt64(measureMilliseconds) * 1_000_000
        let results = (0..<connections).map { _ in ThreadResult() }
        var threads: [JoinableThread] = []
        var startError: Error?
        for (fd, result) in zip(fds, results) {
            do {
                threads.append(
                    try JoinableThread {
                        run(
                            fd: fd, batch: batch, outstanding: outstanding, framing: workload.framing,
                            expectedReply: workload.probeReply,
                            warmEnd: warmEnd, measureEnd: measureEnd, result: result)
                    })
            } catch {
                startError = error
                break
            }
        }
        threads.forEach { $0.join() }
        let cpuAfter = workload.pid > 0 ? ServerCPU.microseconds(workload.pid) : nil
        if let startError { throw startError }
        if let failure = results.compactMap(\.error).first { throw LoadError("\(workload.server): \(failure)") }
        let measured = results.reduce(0) { $0 + $1.measuredReplies }
        let total = results.reduce(0) { $0 + $1.totalReplies }
        guard measured > 0 else {
            throw LoadError("\(workload.server): no reply completed inside the \(measureMilliseconds) ms window")
        }
        let seconds =
            connections == 1
            ? Double(results[0].measuredNanoseconds) / 1e9
            : Double(measureMilliseconds) / 1e3
        var cpuPerRequest: Double?
        if let cpuBefore, let cpuAfter, total > 0 { cpuPerRequest = Double(cpuAfter - cpuBefore) / Double(total) }
        return Measurement(requestsPerSecond: Double(measured) / seconds, serverMicrosecondsPerRequest: cpuPerRequest)
    }

    /// One connection's loop (runs on its own thread; blocking I/O with timeouts).
    private static func run(
        fd: Int32, batch: [UInt8], outstanding: Int, framing: ReplyFraming, expectedReply: [UInt8],
        warmEnd: UInt64, measureEnd: UInt64, result: ThreadResult
    ) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        var counter = ReplyCounter(framing: framing, expectedReply: expectedReply)
        do {
            try batch.withUnsafeBytes { request in
                for _ in 0..<maxBatchesPerRun {
                    let begun = Clock.now()
                    if begun >= measureEnd { break }
                    try UnixSocket.writeAll(fd, request)
                    var pending = outstanding
                    while pending > 0 {
                        let n = try UnixSocket.readSome(fd, into: buffer)
                        pending -= try counter.feed(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                    }
                    guard pending == 0 else { throw LoadError("\(-pending) replies more than requests") }
                    let ended = Clock.now()
                    result.totalReplies += outstanding
                    if ended >= warmEnd && ended < measureEnd {
                        result.measuredReplies += outstanding
                        result.measuredNanoseconds += ended - begun
                    }
                }
            }
        } catch {
            result.error = "\(error)"
        }
    }
}

enum ServerCPU {
    static func microseconds(_ pid: pid_t) -> UInt64? {
        guard let text = readSmallFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        let ticks = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
        return (user + system) * 1_000_000 / ticks
    }
}
