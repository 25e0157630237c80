@_spi(Internals) import EndpointMux
import LegacyAdapters
import Glibc

/// The control methods `muxctl serve` answers (the JSON-FD test contract):
/// - `echo`: result = params, or `null` when absent;
/// - `readFds`: reads every received fd to EOF (regular files from offset 0), closes
///   them, result `{"count":N,"contents":[…]}`; a stream that stays open without EOF is
///   read for at most ``readTimeout`` (its bytes so far are the content);
/// - `createFds` `{"count":N,"prefix":P}`: result `{"count":N}` carrying N pipe read
///   ends, pipe i holding P followed by decimal i;
/// - `stats`: `{"requests":R,"notifications":n,"notificationFds":f}` for this connection
///   (R counts this request too);
/// - anything else: -32601 with its fds closed; notifications: fds counted and closed.
enum EchoControlMethods {
    static let maxCreatedDescriptors = 4096
    /// Longest wait for one passed stream's EOF (the handler runs on a worker thread, so
    /// it never blocks a loop; this bounds how long it holds the worker).
    static let readTimeout: Duration = .seconds(2)
    /// Longest `createFds` prefix: each pipe holds it and must not fill (64 KiB).
    static let maxPrefixBytes = 4096

    static func handle(_ received: ReceivedControlMessage, context: ConnectionContext) -> OutgoingControlMessage? {
        switch received.message {
        case let .notification(notification):
            _ = notification
            context.counters["notifications", default: 0] += 1
            context.counters["notificationFds", default: 0] += received.fileDescriptorCount
            return nil  // the fds close when `received` is released
        case .response:
            return nil
        case let .request(request):
            context.counters["requests", default: 0] += 1
            switch request.method {
            case "echo":
                return OutgoingControlMessage(replyingTo: request, result: request.params ?? .null)
            case "readFds":
                var descriptors = received.takeFileDescriptors()
                var contents: [JSONValue] = []
                while let fd = descriptors.popFirst() {
                    contents.append(
                        .string(String(decoding: readToEnd(fd.rawValue, timeout: readTimeout), as: UTF8.self)))
                }
                return OutgoingControlMessage(
                    replyingTo: request,
                    result: [
                        "count": .number(JSONNumber(contents.count)), "contents": .array(contents),
                    ])
            case "createFds":
                guard let count = request.params?["count"]?.numberValue?.int64, count >= 0,
                    count <= Int64(maxCreatedDescriptors)
                else {
                    return OutgoingControlMessage(
                        replyingTo: request,
                        error: JSONRPCErrorObject(
                            code: JSONRPCErrorObject.invalidParamsCode,
                            message: "count must be 0...\(maxCreatedDescriptors)"))
                }
                let prefix = request.params?["prefix"]?.stringValue ?? ""
                guard prefix.utf8.count <= maxPrefixBytes else {
                    return OutgoingControlMessage(
                        replyingTo: request,
                        error: JSONRPCErrorObject(
                            code: JSONRPCErrorObject.invalidParamsCode,
                            message: "prefix longer than \(maxPrefixBytes) bytes"))
                }
                var descriptors = FileDescriptorQueue()
                for i in 0..<Int(count) {
                    var ends: [Int32] = [-1, -1]
                    guard pipe(&ends) == 0 else {
                        return OutgoingControlMessage(
                            replyingTo: request,
                            error: JSONRPCErrorObject(
                                code: JSONRPCErrorObject.internalErrorCode, message: "pipe: errno \(errno)"))
                    }
                    for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
                    let text = Array((prefix + String(i)).utf8)
                    _ = text.withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) }
                    close(ends[1])
                    descriptors.append(OwnedFileDescriptor(taking: ends[0]))
                }
                return OutgoingControlMessage(
                    replyingTo: request, result: ["count": .number(JSONNumber(Int(count)))],
                    fileDescriptors: descriptors)
            case "stats":
                return OutgoingControlMessage(
                    replyingTo: request,
                    result: [
                        "requests": .number(JSONNumber(context.counters["requests", default: 0])),
                        "notifications": .number(JSONNumber(context.counters["notifications", default: 0])),
                        "notificationFds": .number(JSONNumber(context.counters["notificationFds", default: 0])),
                    ])
            default:
                return OutgoingControlMessage(replyingTo: request, error: .methodNotFound())
            }
        }
    }
}

/// Reads `fd` to EOF: regular files from offset 0 (`pread`), anything else as a stream,
/// waiting at most `timeout` in all for a stream's bytes (then returns what arrived).
func readToEnd(_ fd: Int32, limit: Int = 16 * 1024 * 1024, timeout: Duration = .seconds(2)) -> [UInt8] {
    var st = stat()
    let regular = fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    let deadline = ContinuousClock.now + timeout
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count < limit {
        if !regular {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let now = ContinuousClock.now
            guard now < deadline else { break }
            let remaining = now.duration(to: deadline)
            let milliseconds = Int32(
                clamping: remaining.components.seconds * 1000
                    + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            let n = poll(&ready, 1, milliseconds)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
        }
        let n = chunk.withUnsafeMutableBytes { raw -> Int in
            regular ? pread(fd, raw.baseAddress, raw.count, off_t(bytes.count)) : read(fd, raw.baseAddress, raw.count)
        }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return bytes
}
