@_spi(Internals) public import EndpointMux
import Glibc

/// A client connection speaking v1 frames: sends requests, reads frames under a
/// deadline, and matches replies by request id. An epitaph from the server surfaces as
/// `EndpointMuxError/epitaph(_:)`; EOF without one as `EndpointMuxError/peerClosed`.
///
/// Blocking calls wait with `poll(2)` on the caller's thread: use it from a thread you own.
public final class FrameClient {
    /// The connected socket (owned; closed on deinit).
    package var fileDescriptor: Int32 { socket.rawValue }
    /// The lane epitaphs arrive on.
    package let epitaphLane: PayloadProtocol
    private let socket: OwnedFileDescriptorBox
    private var buffer: [UInt8] = []
    private var nextRequestID: UInt64 = 1
    /// Frames read while waiting for another request id.
    private var unmatched: [UInt64: Frame] = [:]

    /// Connects to the Unix socket at `path`, giving up after `connectTimeout` (a server
    /// whose accept queue is full makes `connect` wait). The socket is non-blocking:
    /// every later call waits with `poll(2)` under its own deadline.
    /// - Throws: `EndpointMuxError/connect(_:)`; the errno is `ETIMEDOUT` when the timeout passed.
    public convenience init(
        socketPath path: String, epitaphLane: PayloadProtocol = .defaultEpitaph, connectTimeout: Duration = .seconds(10)
    ) throws(EndpointMuxError) {
        try self.init(socketPath: path, epitaphLane: epitaphLane, connectDeadline: .now + connectTimeout)
    }

    /// Connects to the Unix socket at `path`, giving up at `connectDeadline`.
    /// - Throws: `EndpointMuxError/connect(_:)`; the errno is `ETIMEDOUT` when the deadline passed.
    public init(
        socketPath path: String, epitaphLane: PayloadProtocol = .defaultEpitaph,
        connectDeadline: ContinuousClock.Instant
    ) throws(EndpointMuxError) {
        self.socket = OwnedFileDescriptorBox(try ClientSocket.connect(to: path, deadline: connectDeadline))
        self.epitaphLane = epitaphLane
    }

    /// The process id of the server, from `SO_PEERCRED`.
    package func peerProcessID() throws(EndpointMuxError) -> Int32 {
        do { return try SocketIO.peerProcessID(fileDescriptor) } catch { throw .transport(error) }
    }

    /// Writes `bytes` completely (`MSG_NOSIGNAL`).
    package func write(_ bytes: [UInt8], deadline: ContinuousClock.Instant) throws(EndpointMuxError) {
        var sent = 0
        while sent < bytes.count {
            let attempt = bytes.withUnsafeBytes { raw in
                Result { () throws(EndpointMuxError) in
                    try SocketIO.send(
                        to: fileDescriptor, bytes: UnsafeRawBufferPointer(rebasing: raw[sent...]),
                        fileDescriptors: [Int32]())
                }
            }
            let result: Int?
            switch attempt {
            case let .success(value): result = value
            case let .failure(error): throw .transport(error)
            }
            if let n = result { sent += n; continue }
            try wait(writable: true, deadline: deadline)
        }
    }

    /// Sends a REQUEST with a fresh request id and waits for the RESPONSE echoing it.
    public func request(
        lane: PayloadProtocol, payload: [UInt8], timeout: Duration = .seconds(5)
    ) throws(EndpointMuxError) -> Frame {
        try request(lane: lane, payload: payload, deadline: .now + timeout)
    }

    /// Sends a REQUEST with a fresh request id and waits until `deadline` for the
    /// RESPONSE echoing it.
    public func request(
        lane: PayloadProtocol, payload: [UInt8], deadline: ContinuousClock.Instant
    ) throws(EndpointMuxError) -> Frame {
        let id = nextRequestID
        nextRequestID += 1
        let frame = Frame(payloadProtocol: lane, payload: payload, requestID: id)
        do { try write(frame.encoded(), deadline: deadline) } catch let error as EndpointMuxError { throw error } catch
        {
            throw .malformedAnswer("request does not encode: \(error)")
        }
        return try response(to: id, lane: lane, deadline: deadline)
    }

    /// Waits for the RESPONSE on `lane` echoing `requestID`; other frames are kept for later.
    package func response(
        to requestID: UInt64, lane: PayloadProtocol, deadline: ContinuousClock.Instant
    )
        throws(EndpointMuxError) -> Frame
    {
        if let frame = unmatched.removeValue(forKey: requestID) { return frame }
        while true {
            let frame = try readFrame(deadline: deadline)
            if frame.kind == .response, frame.payloadProtocol == lane, frame.requestID == requestID { return frame }
            if frame.kind == .response { unmatched[frame.requestID] = frame }
        }
    }

    /// Reads the next frame; an epitaph frame ends the conversation with ``EndpointMuxError/epitaph(_:)``.
    package func readFrame(deadline: ContinuousClock.Instant) throws(EndpointMuxError) -> Frame {
        while true {
            if let frame = try takeFrame() {
                if let epitaph = Epitaph(v1Frame: frame, lane: epitaphLane) { throw .epitaph(epitaph) }
                return frame
            }
            try wait(writable: false, deadline: deadline)
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            let n = chunk.withUnsafeMutableBytes { recv(fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                buffer += chunk[..<n]
            } else if n == 0 {
                throw .peerClosed
            } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                if errno == ECONNRESET { throw .peerClosed }
                throw .transport(.system(operation: "recv", errno: errno))
            }
        }
    }

    private func takeFrame() throws(EndpointMuxError) -> Frame? {
        guard !buffer.isEmpty else { return nil }
        let status: V1Framing.HeaderStatus
        switch buffer.withUnsafeBytes({ raw in Result { () throws(FramingError) in try V1Framing.readHeader(raw) } }) {
        case let .success(value): status = value
        case let .failure(error): throw .malformedAnswer(error.description)
        }
        guard case let .header(length) = status, buffer.count >= V1Framing.headerByteCount + length else { return nil }
        let end = V1Framing.headerByteCount + length
        let frame: Frame
        do {
            frame = try Frame(parsingBody: Array(buffer[V1Framing.headerByteCount..<end]))
        } catch {
            throw .malformedAnswer(error.description)
        }
        buffer.removeFirst(end)
        return frame
    }

    private func wait(writable: Bool, deadline: ContinuousClock.Instant) throws(EndpointMuxError) {
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else { throw .timedOut }
        let ready: Bool
        do {
            ready =
                writable
                ? try SocketIO.waitUntilWritable(fileDescriptor, timeout: remaining)
                : try SocketIO.waitUntilReadable(fileDescriptor, timeout: remaining)
        } catch {
            throw .transport(error)
        }
        if !ready { throw .timedOut }
    }
}

/// Holds an ``OwnedFileDescriptor`` in a class so copyable types can own a socket.
final class OwnedFileDescriptorBox {
    private var descriptor: OwnedFileDescriptor
    init(_ descriptor: consuming OwnedFileDescriptor) { self.descriptor = descriptor }
    var rawValue: Int32 { descriptor.rawValue }
}
