@_spi(Internals) public import EndpointMux
import Glibc

/// One connection for daemons written with Swift concurrency: events arrive on ``events``,
/// sends come from any task.
///
/// The connection **owns** its socket: it is served on the library's shared epoll event
/// loops (one per core; no thread, pipe or task per connection, no task or thread of the
/// concurrency pool ever blocks) and closed by the library once the connection is over,
/// so no write can land on an fd number the daemon has reused.
///
/// An event is "being handled" from the moment it is delivered until the consumer asks
/// for the next one: an end the peer causes meanwhile (EOF, a fatal error after good
/// messages) waits until then, so the consumer's answers go before any epitaph; and while
/// `ConnectionOptions/maxOutstandingWork` events wait for the consumer, nothing more is
/// read (backpressure). When the consumer stops iterating — `break`, or its task is
/// cancelled — or the connection is released, it ends with an `EpitaphStatus/ok`
/// epitaph.
///
/// In `LegacyMode/sticky` mode the connection keeps the socket after
/// ``ConnectionEvent/legacyTakeover(_:)``: the rest of the stream arrives as
/// ``ConnectionEvent/legacyMessage(_:)`` chunks, as read, and answers go through ``send(bytes:)``.
///
/// ```swift
/// let connection = try AsyncConnection(taking: OwnedFileDescriptor(taking: fd), mux: mux)
/// for await event in connection.events {
///     if case let .payload(frame) = event { try connection.send(frame.response(payload: reply(frame))) }
/// }
/// ```
public final class AsyncConnection: Sendable {
    /// Events the consumer may leave unconsumed (by default) before the connection stops
    /// reading: ``ConnectionOptions/maxOutstandingWork``.
    package static let maxUnconsumedEvents = ConnectionOptions().maxOutstandingWork

    /// Everything the connection reports, in order; finishes after `.closed`.
    public let events: Events
    private let connection: LoopConnection
    private let consumer: Consumer
    private let maxFrameBodyByteCount: Int

    /// The connection's events; iterate once.
    public struct Events: AsyncSequence, Sendable {
        /// One event.
        public typealias Element = ConnectionEvent
        let stream: AsyncStream<ConnectionEvent>
        fileprivate let consumer: Consumer

        /// The iterator; asking for the next event tells the connection the last one is
        /// handled. Dropping it (or cancelling its task) closes the connection.
        public struct AsyncIterator: AsyncIteratorProtocol {
            var base: AsyncStream<ConnectionEvent>.AsyncIterator
            fileprivate let lifetime: IteratorLifetime
            private var holding = false

            fileprivate init(base: AsyncStream<ConnectionEvent>.AsyncIterator, consumer: Consumer) {
                self.base = base
                self.lifetime = IteratorLifetime(consumer)
            }

            /// The next event, or `nil` after `.closed`.
            public mutating func next() async -> ConnectionEvent? {
                let consumer = lifetime.consumer
                if holding {
                    holding = false
                    consumer.handled()
                }
                var base = self.base
                let event = await withTaskCancellationHandler {
                    await base.next()
                } onCancel: {
                    consumer.stop(reason: "the consuming task was cancelled")
                }
                self.base = base
                if let event, !event.isClosed { holding = true }
                return event
            }
        }

        /// Makes the iterator.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(base: stream.makeAsyncIterator(), consumer: consumer)
        }
    }

    /// Starts serving the connected socket `fileDescriptor`, which the connection now owns
    /// (made non-blocking; closed by the library when the connection ends).
    /// - Parameter fileDescriptor: the connected stream socket, owned from now on.
    /// - Parameter mux: the mux deciding every message.
    /// - Parameter options: per-connection behaviour (timeouts, output cap, legacy mode).
    /// - Parameter telemetry: where the connection is logged and counted (share one per
    ///   configuration); `nil`, the default, logs and counts nothing.
    /// - Throws: `EndpointMuxError` when the event loops could not be started.
    public init(
        taking fileDescriptor: consuming OwnedFileDescriptor, mux: EndpointMux,
        options: ConnectionOptions = ConnectionOptions(),
        telemetry: ConnectionTelemetry? = nil
    ) throws(EndpointMuxError) {
        guard let group = MuxEventLoopGroup.shared else {
            throw .system(operation: "epoll_create1", errno: EMFILE)
        }
        let loop = group.next()
        let (stream, continuation) = AsyncStream<ConnectionEvent>.makeStream()
        let consumer = Consumer()
        var options = options
        options.streamsAfterTakeover = true  // the daemon cannot read the socket: the connection does
        let connection = LoopConnection(
            taking: fileDescriptor.release(), loop: loop, mux: mux, options: options,
            telemetry: telemetry
        ) { connection, events in
            for event in events {
                if event.isClosed {
                    continuation.yield(event)
                    continuation.finish()
                } else {
                    connection.driver.workStarted()
                    consumer.yielded()
                    continuation.yield(event)
                }
            }
        }
        consumer.connection = connection
        self.connection = connection
        self.consumer = consumer
        self.maxFrameBodyByteCount = mux.limits.maxFrameBodyByteCount
        self.events = Events(stream: stream, consumer: consumer)
        loop.execute { loop.register(connection) }
    }

    /// Events delivered and not yet handled by the consumer (for tests of backpressure).
    var unconsumedEventCount: Int { consumer.outstanding }

    /// Queues a v1 frame.
    /// - Throws: `EndpointMuxError` with code `EndpointMuxError/Code/limitExceeded` when
    ///   it exceeds `MuxLimits/maxFrameBodyByteCount`; nothing is queued then.
    public func send(_ frame: Frame) throws(EndpointMuxError) {
        // Checked here so the error reaches the caller; encoded on the loop (a big payload
        // is then written from its own storage, not copied).
        do throws(FramingError) {
            try ProtobufWireWriter.checkBodyByteCount(
                frame.encodedByteCount - V1Framing.headerByteCount,
                maxBodyByteCount: maxFrameBodyByteCount)
        } catch { throw .framing(error) }
        connection.withDriver { try? $0.send(frame) }
    }

    /// Queues raw bytes (e.g. a legacy reply).
    public func send(bytes: [UInt8]) { connection.withDriver { $0.send(bytes: bytes) } }

    /// Queues a control message with the fds it carries (closed once sent, or when the
    /// connection has ended).
    public func send(_ message: OutgoingControlMessage) { connection.withDriver { $0.send(message) } }

    /// Ends the connection with `epitaph` (then shutdown, drain, `.closed`).
    public func close(epitaph: Epitaph = Epitaph(status: .ok, reason: "closed by the server")) {
        connection.withDriver { $0.close(epitaph: epitaph) }
    }

    /// Releasing a connection that is still open closes it (the loop finishes it).
    deinit {
        consumer.stop(reason: "connection released by the server")
    }

    /// The consumer's side: counts events out and handled, and ends the connection when
    /// the consumer goes away.
    fileprivate final class Consumer: @unchecked Sendable {
        private let lock = NSLockLike()
        private var delivered = 0
        private var acknowledged = 0
        private var stopped = false
        /// Set once in `init`, before the connection is registered; weak, as the loop
        /// holds the connection while it is open (and the connection holds this).
        weak var connection: LoopConnection?

        var outstanding: Int { lock.withLock { delivered - acknowledged } }

        /// Called on the loop thread for every event yielded.
        func yielded() { lock.withLock { delivered += 1 } }

        /// The consumer finished with one event; tells the loop. One task per event, in
        /// the same FIFO as the consumer's sends, so an acknowledgment never overtakes the
        /// answer sent before it.
        func handled() {
            lock.withLock { acknowledged += 1 }
            connection?.withDriver { $0.workFinished(now: .now) }
        }

        /// The consumer is gone: close with an OK epitaph (once).
        func stop(reason: String) {
            let first = lock.withLock { () -> Bool in
                defer { stopped = true }
                return !stopped
            }
            guard first, let connection else { return }
            connection.withDriver { $0.close(epitaph: Epitaph(status: .ok, reason: reason)) }
        }
    }

    /// Ends the connection when the iterator (every copy of it) is gone.
    fileprivate final class IteratorLifetime: Sendable {
        let consumer: Consumer
        init(_ consumer: Consumer) { self.consumer = consumer }
        deinit { consumer.stop(reason: "the consumer stopped iterating") }
    }
}
