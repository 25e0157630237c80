@_spi(Internals) package import EndpointMux
import Glibc

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
package struct OutboundQueue: ~Copyable, Sendable {
    /// What ``OutboundQueue/flush(to:)`` achieved.
    package enum FlushOutcome: Sendable, Hashable {
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
    package private(set) var pendingByteCount = 0

    /// Descriptors queued and not yet sent.
    package var pendingFileDescriptorCount: Int {
        fds.count
    }

    /// Whether nothing is left to write.
    package var isEmpty: Bool {
        head == messages.count
    }

    /// The most descriptors one `sendmsg` may carry, kept between 1 and
    /// ``SocketIO/maxFileDescriptorsPerCall`` (values outside are clamped). Lowered
    /// automatically when the kernel refuses a batch.
    package var maxFileDescriptorsPerSendmsg: Int {
        get { limit }
        set { limit = Self.clampedLimit(newValue) }
    }

    /// Creates an empty queue whose batches start at `maxFileDescriptorsPerSendmsg`
    /// descriptors (clamped as ``maxFileDescriptorsPerSendmsg`` is; the jsonrpc-fdpass
    /// default is 500).
    package init(maxFileDescriptorsPerSendmsg: Int = 500) {
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
    package mutating func enqueue(
        _ bytes: [UInt8],
        fileDescriptors: consuming FileDescriptorQueue = FileDescriptorQueue()
    ) {
        let fdCount = fileDescriptors.count
        guard !bytes.isEmpty || fdCount > 0 else { return }
        if fdCount == 0, bytes.count <= Self.smallMessageByteCount, head < messages.count {
            // A small fd-less message joins the fd-less one queued before it (one iovec, one
            // entry); big ones keep their own storage, written as their own iovec, uncopied.
            let last = messages.count - 1
            if messages[last].fileDescriptorsLeft == 0,
                messages[last].bytes.count + bytes.count <= Self.joinedMessageByteCount
            {
                messages[last].bytes.append(contentsOf: bytes)
                pendingByteCount += bytes.count
                return
            }
        }
        if fdCount > 0 { fds.append(takingRawValues: fileDescriptors.releaseAll()) }
        messages.append(Message(bytes: bytes, bytesSent: 0, fileDescriptorsLeft: fdCount))
        pendingByteCount += bytes.count
    }

    /// Appends a small fd-less message that `fill` writes into the queue's own storage —
    /// the end of the fd-less message queued last when it has room (no allocation, no
    /// copy), a new message otherwise — and returns the bytes `fill` appended. `fill` must
    /// append at most ``smallMessageByteCount`` bytes and nothing else.
    package mutating func enqueueAppending<E: Error>(_ fill: (inout [UInt8]) throws(E) -> Void) throws(E) -> Int {
        let last = messages.count - 1
        if head <= last, messages[last].fileDescriptorsLeft == 0,
            messages[last].bytes.count <= Self.joinedMessageByteCount - Self.smallMessageByteCount
        {
            let before = messages[last].bytes.count
            try fill(&messages[last].bytes)
            let added = messages[last].bytes.count - before
            pendingByteCount += added
            return added
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.smallMessageByteCount)
        try fill(&bytes)
        guard !bytes.isEmpty else { return 0 }
        messages.append(Message(bytes: bytes, bytesSent: 0, fileDescriptorsLeft: 0))
        pendingByteCount += bytes.count
        return bytes.count
    }

    /// Writes as much as `fd` takes without blocking (on a non-blocking socket), in order.
    ///
    /// Messages are coalesced: one `sendmsg` gathers the front message and the fd-less
    /// messages after it (up to ``maxMessagesPerSendmsg``), so a batch of answers leaves
    /// in as few calls as the socket allows; a message with fds always starts its own call
    /// (its fds ride with its first byte, as jsonrpc-fdpass requires).
    ///
    /// - Parameter nonBlocking: send with `MSG_DONTWAIT`, so even a blocking socket
    ///   returns ``FlushOutcome/wouldBlock`` instead of waiting.
    /// - Returns: ``FlushOutcome/flushed`` when the queue is empty,
    ///   ``FlushOutcome/wouldBlock`` when the socket is full (call again when writable).
    /// - Throws: ``EndpointMuxError/system(operation:errno:)`` from `sendmsg` (`EPIPE` when
    ///   the peer has gone), or ``EndpointMuxError/fileDescriptorBatchRejected(count:errno:)``
    ///   when even one descriptor is refused. The queue keeps the unsent remainder and its
    ///   descriptors.
    package mutating func flush(to fd: Int32, nonBlocking: Bool = false) throws(EndpointMuxError) -> FlushOutcome {
        while head < messages.count {
            while messages[head].bytesSent < messages[head].bytes.count
                || messages[head].fileDescriptorsLeft > 0
            {
                guard try sendStep(to: fd, nonBlocking: nonBlocking) else { return .wouldBlock }
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

    /// Most messages one `sendmsg` gathers.
    package static let maxMessagesPerSendmsg = 64

    /// Fd-less messages up to this size are copied onto the end of the fd-less message
    /// queued before them, up to ``joinedMessageByteCount`` bytes together.
    static let smallMessageByteCount = 1024
    static let joinedMessageByteCount = 64 * 1024

    /// Flushes, waiting with `poll(2)` for writability whenever the socket is full, until
    /// everything is written or `deadline` passes (`nil`: no limit).
    ///
    /// Blocks the calling thread: call it only on a thread you own.
    /// - Throws: ``EndpointMuxError/timedOut(operation:)`` (`"sendmsg"`) at the deadline, with
    ///   the remainder still queued; otherwise as ``flush(to:)`` and
    ///   ``SocketIO/waitUntilWritable(_:timeout:)``.
    package mutating func flushBlocking(to fd: Int32, deadline: ContinuousClock.Instant?) throws(EndpointMuxError) {
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

    /// One `sendmsg` for the front message (and the fd-less messages after it). Returns
    /// `false` when the socket is full.
    private mutating func sendStep(to fd: Int32, nonBlocking: Bool = false) throws(EndpointMuxError) -> Bool {
        let message = messages[head]
        let batch = Swift.min(message.fileDescriptorsLeft, limit)
        let dataLeft = message.bytesSent < message.bytes.count
        // Later messages may join only once the front message's fds all go in this call.
        var gathered = head + 1
        if dataLeft && batch == message.fileDescriptorsLeft {
            while gathered < messages.count, gathered - head < Self.maxMessagesPerSendmsg,
                messages[gathered].fileDescriptorsLeft == 0
            {
                gathered += 1
            }
        }
        let written: Int?
        do throws(EndpointMuxError) {
            written = try Self.send(
                messages[head..<gathered], dataLeft: dataLeft,
                with: fds.prefixRawValues(batch), to: fd, nonBlocking: nonBlocking)
        } catch  where error.isFileDescriptorBatchRejection {
            guard batch > 1 else { throw error }
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
        guard dataLeft else { return true }  // a continuation byte
        var left = written
        var index = head
        while left > 0, index < gathered {
            let take = Swift.min(left, messages[index].bytes.count - messages[index].bytesSent)
            messages[index].bytesSent += take
            pendingByteCount -= take
            left -= take
            index += 1
        }
        return true
    }

    /// One `sendmsg` of the unsent bytes of `messages` (or a continuation byte when the
    /// front one has no data left) with `descriptors`.
    private static func send(
        _ messages: ArraySlice<Message>,
        dataLeft: Bool,
        with descriptors: ArraySlice<Int32>,
        to fd: Int32,
        nonBlocking: Bool
    ) throws(EndpointMuxError) -> Int? {
        guard dataLeft else {
            let result = continuationByte.withUnsafeBytes { raw in
                Result { () throws(EndpointMuxError) -> Int? in
                    try SocketIO.send(to: fd, chunks: [raw], fileDescriptors: descriptors, nonBlocking: nonBlocking)
                }
            }
            return try result.get()
        }
        // The arrays stay alive (and unmoved) for the call: `messages` holds them.
        var chunks: [UnsafeRawBufferPointer] = []
        chunks.reserveCapacity(messages.count)
        for message in messages where message.bytesSent < message.bytes.count {
            message.bytes.withUnsafeBytes { raw in
                chunks.append(UnsafeRawBufferPointer(rebasing: raw[message.bytesSent...]))
            }
        }
        return try SocketIO.send(to: fd, chunks: chunks, fileDescriptors: descriptors, nonBlocking: nonBlocking)
    }

    private static let continuationByte: [UInt8] = [0x20]
}
