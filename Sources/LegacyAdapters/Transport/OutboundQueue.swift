#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Messages waiting to be written to a stream socket, each its bytes plus owned file
/// descriptors, sent in order with the jsonrpc-fdpass batching rules.
///
/// - Descriptors go in batches of at most ``maxFileDescriptorsPerSendmsg`` per `sendmsg`,
///   the first batch with the message's first bytes.
/// - When the kernel refuses a batch of more than one (`EINVAL`; Linux takes at most 253),
///   the limit is halved and the same batch retried; the lowered limit stays for later
///   messages.
/// - A partial write continues where it stopped; if descriptors remain, the next batch
///   rides on the next chunk.
/// - Descriptors still left once every byte is written go in continuation `sendmsg` calls
///   whose payload is one space (0x20) each, which JSON receivers skip as whitespace.
/// - A message is never truncated: after `.wouldBlock` or an error, the next ``flush(to:)``
///   resumes exactly where the last one stopped.
///
/// Ownership: the queue owns every enqueued descriptor. Once a batch has been sent, the
/// queue closes its copies (the peer holds its own), like the Rust jsonrpc-fdpass sender
/// does with the `OwnedFd`s it consumes. Descriptors not yet sent, after an error too, stay
/// owned by the queue and are closed when it is destroyed.
///
/// The queue never waits by itself except in ``flushBlocking(to:deadline:)``; a blocking
/// socket makes ``flush(to:)`` block inside `sendmsg`.
public struct OutboundQueue: ~Copyable, Sendable {
    /// What ``OutboundQueue/flush(to:)`` achieved.
    public enum FlushOutcome: Sendable, Hashable {
        /// Every queued message, descriptors included, has been written.
        case flushed
        /// The socket cannot take more now; call `flush` again once it is writable.
        case wouldBlock
    }

    private struct Message {
        var bytes: [UInt8]
        /// Bytes of `bytes` already written.
        var bytesSent: Int
        /// Descriptors of this message not yet sent; they are the front of `fds`.
        var fileDescriptorsLeft: Int
    }

    private var messages: [Message] = []
    private var head = 0
    /// The descriptors of every queued message, in message order.
    private var fds = FileDescriptorQueue()
    private var limit: Int

    /// Bytes of queued messages not yet written. Continuation spaces are not counted.
    public private(set) var pendingByteCount = 0

    /// Descriptors queued and not yet sent.
    public var pendingFileDescriptorCount: Int {
        fds.count
    }

    /// Whether nothing is left to write.
    public var isEmpty: Bool {
        head == messages.count
    }

    /// The most descriptors one `sendmsg` may carry, kept between 1 and
    /// ``SocketIO/maxFileDescriptorsPerCall`` (values outside are clamped). Lowered
    /// automatically when the kernel refuses a batch.
    public var maxFileDescriptorsPerSendmsg: Int {
        get { limit }
        set { limit = Self.clampedLimit(newValue) }
    }

    /// Creates an empty queue whose batches start at `maxFileDescriptorsPerSendmsg`
    /// descriptors (clamped as ``maxFileDescriptorsPerSendmsg`` is; the jsonrpc-fdpass
    /// default is 500).
    public init(maxFileDescriptorsPerSendmsg: Int = 500) {
        limit = Self.clampedLimit(maxFileDescriptorsPerSendmsg)
    }

    private static func clampedLimit(_ value: Int) -> Int {
        Swift.max(1, Swift.min(value, SocketIO.maxFileDescriptorsPerCall))
    }

    /// Queues `bytes` with `fileDescriptors` after every message already queued. The queue
    /// takes ownership of the descriptors and closes them once they are sent.
    ///
    /// A message with no bytes and no descriptors is ignored; one with descriptors but no
    /// bytes sends them on continuation spaces.
    public mutating func enqueue(
        _ bytes: [UInt8],
        fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue()
    ) {
        let fdCount = fileDescriptors.count
        guard !bytes.isEmpty || fdCount > 0 else { return }
        fds.append(takingRawValues: fileDescriptors.releaseAll())
        messages.append(Message(bytes: bytes, bytesSent: 0, fileDescriptorsLeft: fdCount))
        pendingByteCount += bytes.count
    }

    /// Writes as much as `fd` takes without blocking (on a non-blocking socket), in order.
    ///
    /// - Returns: ``FlushOutcome/flushed`` when the queue is empty,
    ///   ``FlushOutcome/wouldBlock`` when the socket is full (call again when writable).
    /// - Throws: ``TransportError/system(operation:errno:)`` from `sendmsg` (`EPIPE` when
    ///   the peer has gone), or ``TransportError/fileDescriptorBatchRejected(count:errno:)``
    ///   when even one descriptor is refused. The queue keeps the unsent remainder and its
    ///   descriptors.
    public mutating func flush(to fd: Int32) throws(TransportError) -> FlushOutcome {
        while head < messages.count {
            while messages[head].bytesSent < messages[head].bytes.count
                || messages[head].fileDescriptorsLeft > 0
            {
                guard try sendStep(to: fd) else { return .wouldBlock }
            }
            messages[head] = Message(bytes: [], bytesSent: 0, fileDescriptorsLeft: 0)
            head += 1
            if head == messages.count {
                messages.removeAll(keepingCapacity: messages.count <= 64)
                head = 0
            } else if head >= 64 && head * 2 >= messages.count {
                messages.removeFirst(head)
                head = 0
            }
        }
        return .flushed
    }

    /// Flushes, waiting with `poll(2)` for writability whenever the socket is full, until
    /// everything is written or `deadline` passes (`nil`: no limit).
    ///
    /// Blocks the calling thread: call it only on a thread you own.
    /// - Throws: ``TransportError/timedOut(operation:)`` (`"sendmsg"`) at the deadline, with
    ///   the remainder still queued; otherwise as ``flush(to:)`` and
    ///   ``SocketIO/waitUntilWritable(_:timeout:)``.
    public mutating func flushBlocking(to fd: Int32, deadline: ContinuousClock.Instant?) throws(TransportError) {
        let clock = ContinuousClock()
        while try flush(to: fd) == .wouldBlock {
            var timeout: Duration?
            if let deadline {
                let now = clock.now
                guard now < deadline else { throw .timedOut(operation: "sendmsg") }
                timeout = deadline - now
            }
            guard try SocketIO.waitUntilWritable(fd, timeout: timeout) else {
                throw .timedOut(operation: "sendmsg")
            }
        }
    }

    /// One `sendmsg` for the front message. Returns `false` when the socket is full.
    private mutating func sendStep(to fd: Int32) throws(TransportError) -> Bool {
        let message = messages[head]
        let batch = Swift.min(message.fileDescriptorsLeft, limit)
        let dataLeft = message.bytesSent < message.bytes.count
        let written: Int?
        do throws(TransportError) {
            if dataLeft {
                written = try Self.send(message.bytes, from: message.bytesSent, with: fds.prefixRawValues(batch), to: fd)
            } else {
                written = try Self.send(Self.continuationByte, from: 0, with: fds.prefixRawValues(batch), to: fd)
            }
        } catch .fileDescriptorBatchRejected(let count, let errno) {
            guard batch > 1 else { throw .fileDescriptorBatchRejected(count: count, errno: errno) }
            limit = batch / 2  // nothing was sent: retry the same position with half as many
            return true
        }
        guard let written else { return false }
        guard written > 0 else {
            // A stream sendmsg of at least one byte writes something or fails; a 0 would
            // leave it unknown whether the batch went, so the stream cannot continue.
            throw .system(operation: "sendmsg", errno: EIO)
        }
        fds.closeFirst(batch)
        messages[head].fileDescriptorsLeft -= batch
        if dataLeft {
            messages[head].bytesSent += written
            pendingByteCount -= written
        }
        return true
    }

    /// `SocketIO.send` of `bytes[offset...]` with `descriptors`.
    private static func send(
        _ bytes: [UInt8],
        from offset: Int,
        with descriptors: ArraySlice<Int32>,
        to fd: Int32
    ) throws(TransportError) -> Int? {
        let result: Result<Int?, TransportError> = bytes.withUnsafeBytes { all in
            do throws(TransportError) {
                let remaining = UnsafeRawBufferPointer(rebasing: all[offset...])
                return .success(try SocketIO.send(to: fd, bytes: remaining, fileDescriptors: descriptors))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private static let continuationByte: [UInt8] = [0x20]
}
