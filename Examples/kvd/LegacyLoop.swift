import EndpointMux
import LegacyAdapters
#if canImport(Glibc)
import Glibc
#endif

/// kvd's event loop, as it was before EndpointMux: it owns the listening socket and every
/// connection, waits with `poll(2)`, and speaks the line protocol. The retrofit changes
/// only `Connection`: with a mux, bytes go through a `ConnectionDriver` (per-message
/// legacy mode) instead of straight to the line parser.
final class KVLoop {
    let listener: Int32
    let store: KVStore
    let mux: EndpointMux?
    private var connections: [Int32: Connection] = [:]
    private var running = true
    private let wakeReader: Int32

    init(listener: Int32, store: KVStore, mux: EndpointMux?, wakeReader: Int32) {
        self.listener = listener
        self.store = store
        self.mux = mux
        self.wakeReader = wakeReader
    }

    func run() {
        while running {
            var fds = [pollfd(fd: wakeReader, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            let order = Array(connections.keys)
            for fd in order {
                guard let connection = connections[fd] else { continue }
                fds.append(pollfd(fd: fd, events: (connection.wantsReadable ? Int16(POLLIN) : 0)
                                  | (connection.wantsWritable ? Int16(POLLOUT) : 0), revents: 0))
            }
            if poll(&fds, nfds_t(fds.count), 1000) < 0 && errno != EINTR { break }
            if fds[0].revents != 0 { break }
            if fds[1].revents != 0 { acceptAll() }
            for (index, fd) in order.enumerated() where fds[index + 2].revents != 0 {
                guard let connection = connections[fd] else { continue }
                if !connection.service(revents: fds[index + 2].revents) {
                    connections[fd] = nil
                    close(fd)
                }
            }
        }
        for fd in connections.keys { close(fd) }
    }

    private func acceptAll() {
        while true {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            connections[fd] = Connection(fd: fd, store: store, mux: mux)
        }
    }
}

/// One client connection.
final class Connection {
    let fd: Int32
    let store: KVStore
    /// Without a mux: the original code path.
    private var pending: [UInt8] = []
    private var unsent: [UInt8] = []
    /// With a mux: the retrofit.
    private let driver: ConnectionDriver?

    init(fd: Int32, store: KVStore, mux: EndpointMux?) {
        self.fd = fd
        self.store = store
        self.driver = mux.map { mux in
            ConnectionDriver(borrowing: fd, mux: mux, options: ConnectionOptions(legacyMode: .perMessage({ bytes in
                if let n = KVLineProtocol.lineLength(bytes) { return .complete(n) }
                return bytes.count > KVLineProtocol.maxLineBytes ? .invalid(reason: "line too long") : .needMoreBytes
            })))
        }
    }

    var wantsWritable: Bool { driver?.interest.write ?? !unsent.isEmpty }
    var wantsReadable: Bool { driver?.interest.read ?? true }

    /// Handles readiness; false when the connection is over.
    func service(revents: Int16) -> Bool {
        if let driver {
            return handle(driver.handle(revents: revents), driver: driver)
        }
        return serviceWithoutMux(revents: revents)
    }

    // MARK: The retrofit: events from the driver.

    private func handle(_ events: [ConnectionEvent], driver: ConnectionDriver) -> Bool {
        for event in events {
            switch event {
            case let .legacyMessage(line):
                driver.send(bytes: Array(store.execute(String(decoding: line.dropLast(), as: UTF8.self)).utf8) + [0x0A])
            case let .payload(frame) where frame.kind == .request:
                let reply = store.execute(String(decoding: frame.payload, as: UTF8.self))
                try? driver.send(frame.response(payload: Array(reply.utf8)))
            case let .control(received):
                if let reply = KVControl.handle(received, store: store) {
                    driver.send(reply.message, fileDescriptors: reply.takeFileDescriptors())
                }
            case .closed:
                return false
            case .payload, .legacyTakeover:
                continue
            }
        }
        return true
    }

    // MARK: The original code path (kvd before EndpointMux).

    private func serviceWithoutMux(revents: Int16) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { pending += chunk[..<n]; continue }
            if n == 0 { flush(); return false }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { break }
            return false
        }
        while let length = pending.withUnsafeBytes({ KVLineProtocol.lineLength($0) }) {
            let line = String(decoding: pending[..<(length - 1)], as: UTF8.self)
            pending.removeFirst(length)
            unsent += Array(store.execute(line).utf8) + [0x0A]
        }
        if pending.count > KVLineProtocol.maxLineBytes { return false }
        flush()
        return true
    }

    private func flush() {
        while !unsent.isEmpty {
            let n = unsent.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            unsent.removeFirst(n)
        }
    }
}

/// kvd's control methods: `dumpTo` (one fd: every pair as `key=value\n`) and `loadFrom`
/// (one fd: `key=value` lines).
enum KVControl {
    static func handle(_ received: ReceivedControlMessage, store: KVStore) -> OutgoingControlMessage? {
        guard case let .request(request) = received.message else { return nil }
        var descriptors = received.takeFileDescriptors()
        guard request.method == "dumpTo" || request.method == "loadFrom" else {
            return OutgoingControlMessage(replyingTo: request, error: .methodNotFound())
        }
        guard descriptors.count == 1, let fd = descriptors.popFirst() else {
            return OutgoingControlMessage(replyingTo: request, error: JSONRPCErrorObject(
                code: JSONRPCErrorObject.invalidParamsCode, message: "\(request.method) takes exactly one fd"))
        }
        if request.method == "dumpTo" {
            let bytes = Array(store.dump().utf8)
            var written = 0
            while written < bytes.count {
                let n = bytes.withUnsafeBytes { raw in
                    let rest = UnsafeRawBufferPointer(rebasing: raw[written...])
                    return write(fd.rawValue, rest.baseAddress, rest.count)
                }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    return OutgoingControlMessage(replyingTo: request, error: JSONRPCErrorObject(
                        code: JSONRPCErrorObject.internalErrorCode, message: "write failed: errno \(errno)"))
                }
                written += n
            }
            return OutgoingControlMessage(replyingTo: request, result: ["count": .number(JSONNumber(store.pairs.count))])
        }
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while text.count < 16 * 1024 * 1024 {
            let n = chunk.withUnsafeMutableBytes { read(fd.rawValue, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            text += chunk[..<n]
        }
        let count = store.load(String(decoding: text, as: UTF8.self))
        return OutgoingControlMessage(replyingTo: request, result: ["count": .number(JSONNumber(count))])
    }
}
