public import EndpointMux
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The `async` form of ``ConnectionDriver``, for daemons written with Swift concurrency.
///
/// A thread of its own waits on the borrowed socket with `poll(2)` and runs the driver,
/// so no task and no thread of the concurrency pool ever blocks; events arrive on
/// ``events`` in order, and sends from any task are handed to that thread. When the
/// connection ends, ``events`` finishes after ``ConnectionEvent/closed(_:)``; the daemon
/// still owns (and closes) the fd. While more than ``maxUnconsumedEvents`` events wait for
/// the consumer, the connection stops reading (backpressure). Releasing the connection
/// before it ended closes it with an ``EpitaphStatus/ok`` epitaph.
///
/// ```swift
/// let connection = try AsyncConnection(borrowing: fd, mux: mux)
/// for await event in connection.events {
///     if case let .payload(frame) = event { try connection.send(frame.response(payload: reply(frame))) }
/// }
/// close(fd)
/// ```
public final class AsyncConnection: Sendable {
    /// Events the consumer may leave unconsumed before the connection stops reading.
    public static let maxUnconsumedEvents = 256

    /// Everything the driver reports, in order; finishes after `.closed`.
    public let events: Events
    private let mailbox: Mailbox
    private let thread: OwnedThread

    /// The connection's events; iterate once.
    public struct Events: AsyncSequence, Sendable {
        /// One event.
        public typealias Element = ConnectionEvent
        let stream: AsyncStream<ConnectionEvent>
        fileprivate let mailbox: Mailbox

        /// The iterator; each event taken lets the connection read further.
        public struct AsyncIterator: AsyncIteratorProtocol {
            var base: AsyncStream<ConnectionEvent>.AsyncIterator
            fileprivate let mailbox: Mailbox

            /// The next event, or `nil` after `.closed`.
            public mutating func next() async -> ConnectionEvent? {
                let event = await base.next()
                if event != nil { mailbox.consumed() }
                return event
            }
        }

        /// Makes the iterator.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(base: stream.makeAsyncIterator(), mailbox: mailbox)
        }
    }

    fileprivate enum Command: Sendable {
        case bytes([UInt8])
        case control(OutgoingControlMessage)
        case close(Epitaph)
    }

    fileprivate final class Mailbox: @unchecked Sendable {
        let lock = NSLockLike()
        var commands: [Command] = []
        var closed = false
        /// Events yielded and not yet taken by the consumer.
        var unconsumed = 0
        let wakeReader: Int32
        let wakeWriter: Int32
        init(reader: Int32, writer: Int32) { wakeReader = reader; wakeWriter = writer }

        func post(_ command: Command) {
            let accepted = lock.withLock { () -> Bool in
                guard !closed else { return false }
                commands.append(command)
                return true
            }
            guard accepted else { return }
            var byte: UInt8 = 1
            _ = write(wakeWriter, &byte, 1)
        }

        func take() -> [Command] {
            var scratch = [UInt8](repeating: 0, count: 64)
            while scratch.withUnsafeMutableBytes({ read(wakeReader, $0.baseAddress, $0.count) }) > 0 {}
            return lock.withLock {
                defer { commands = [] }
                return commands
            }
        }

        func shut() { lock.withLock { closed = true } }

        func yielded() { lock.withLock { unconsumed += 1 } }

        /// The consumer took one; wakes the loop when it may read again.
        func consumed() {
            let wake = lock.withLock { () -> Bool in
                unconsumed -= 1
                return unconsumed == AsyncConnection.maxUnconsumedEvents && !closed
            }
            if wake {
                var byte: UInt8 = 0
                _ = write(wakeWriter, &byte, 1)
            }
        }

        var backedUp: Bool { lock.withLock { unconsumed > AsyncConnection.maxUnconsumedEvents } }

        deinit {
            closeDescriptor(wakeReader)
            closeDescriptor(wakeWriter)
        }
    }

    /// Starts serving the connected socket `fileDescriptor` (made non-blocking).
    /// - Throws: ``TransportError`` when the wake-up pipe or the thread cannot be created.
    public init(borrowing fileDescriptor: Int32, mux: EndpointMux, options: ConnectionOptions = ConnectionOptions())
        throws(TransportError)
    {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw .system(operation: "pipe", errno: errno) }
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        _ = fcntl(fileDescriptor, F_SETFL, fcntl(fileDescriptor, F_GETFL) | O_NONBLOCK)
        let mailbox = Mailbox(reader: ends[0], writer: ends[1])
        let (stream, continuation) = AsyncStream<ConnectionEvent>.makeStream()
        self.events = Events(stream: stream, mailbox: mailbox)
        self.mailbox = mailbox
        let loop = Loop(fd: fileDescriptor, mux: mux, options: options)
        self.thread = try OwnedThread { loop.run(mailbox: mailbox, continuation: continuation) }
    }

    /// Events delivered and not yet taken (for tests of backpressure).
    var unconsumedEventCount: Int { mailbox.lock.withLock { mailbox.unconsumed } }

    /// Queues a v1 frame.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)``; nothing is queued then.
    public func send(_ frame: Frame) throws(FramingError) {
        mailbox.post(.bytes(try frame.encoded()))
    }

    /// Queues raw bytes (e.g. a legacy reply).
    public func send(bytes: [UInt8]) { mailbox.post(.bytes(bytes)) }

    /// Queues a control message with the fds it carries.
    public func send(_ message: OutgoingControlMessage) { mailbox.post(.control(message)) }

    /// Ends the connection with `epitaph` (then shutdown, drain, `.closed`).
    public func close(epitaph: Epitaph = Epitaph(status: .ok, reason: "closed by the server")) {
        mailbox.post(.close(epitaph))
    }

    /// Releasing a connection that is still open closes it (the thread finishes on its own).
    deinit {
        mailbox.post(.close(Epitaph(status: .ok, reason: "connection released by the server")))
        thread.detach()
    }

    /// The state owned by the connection's thread.
    private final class Loop: @unchecked Sendable {
        let fd: Int32
        let mux: EndpointMux
        let options: ConnectionOptions
        init(fd: Int32, mux: EndpointMux, options: ConnectionOptions) {
            self.fd = fd
            self.mux = mux
            self.options = options
        }

        func run(mailbox: Mailbox, continuation: AsyncStream<ConnectionEvent>.Continuation) {
            let driver = ConnectionDriver(borrowing: fd, mux: mux, options: options)
            var finished = false
            func deliver(_ events: [ConnectionEvent]) {
                for event in events {
                    mailbox.yielded()
                    continuation.yield(event)
                    if case .closed = event { finished = true }
                }
            }
            while !finished {
                var fds = [pollfd(fd: mailbox.wakeReader, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: fd, events: (driver.wantsReadable && !mailbox.backedUp ? Int16(POLLIN) : 0)
                                  | (driver.wantsWritable ? Int16(POLLOUT) : 0), revents: 0)]
                var timeout: Int32 = -1
                if let deadline = driver.nextDeadline {
                    let remaining = ContinuousClock.now.duration(to: deadline)
                    let milliseconds = remaining.components.seconds * 1000
                        + remaining.components.attoseconds / 1_000_000_000_000_000
                    timeout = Int32(clamping: max(0, milliseconds + 1))
                }
                if poll(&fds, 2, timeout) < 0 && errno != EINTR { break }
                let now = ContinuousClock.now
                if fds[0].revents != 0 {
                    for command in mailbox.take() {
                        switch command {
                        case let .bytes(bytes): driver.send(bytes: bytes)
                        case let .control(message): driver.send(message.message, fileDescriptors: message.takeFileDescriptors())
                        case let .close(epitaph): driver.close(epitaph: epitaph, now: now)
                        }
                    }
                }
                if fds[1].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0, !mailbox.backedUp {
                    deliver(driver.readable(now: now))
                }
                if fds[1].revents & Int16(POLLOUT) != 0 { deliver(driver.writable(now: now)) }
                deliver(driver.tick(now: now))
            }
            mailbox.shut()
            if !finished { continuation.yield(.closed(.transportError(.system(operation: "poll", errno: errno)))) }
            continuation.finish()
        }
    }
}

/// `close(2)` (the name `close` is taken inside ``AsyncConnection``).
private func closeDescriptor(_ fd: Int32) { _ = close(fd) }
