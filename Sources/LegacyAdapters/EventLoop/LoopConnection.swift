@_spi(Internals) package import EndpointMux
import Glibc

/// A connection served on a ``MuxEventLoop``: the loop owns the fd and closes it after
/// ``ConnectionEvent/closed(_:)``, so no write can ever land on a reused fd number. The
/// engine is a ``ConnectionDriver``; this only connects it to the loop.
package final class LoopConnection: LoopSource, @unchecked Sendable {
    package let fileDescriptor: Int32
    package let loop: MuxEventLoop
    /// Touched on the loop's thread only.
    package let driver: ConnectionDriver
    /// Receives every batch of events on the loop's thread (owned: it may move them out
    /// instead of copying them); answers sent from it leave together right after it returns.
    private let onEvents: (LoopConnection, consuming [ConnectionEvent]) -> Void
    private(set) package var isFinished = false

    /// Serves `fileDescriptor`, which the connection now owns (made non-blocking).
    package init(
        taking fileDescriptor: Int32, loop: MuxEventLoop, mux: EndpointMux, options: ConnectionOptions,
        telemetry: ConnectionTelemetry? = nil,
        onEvents: @escaping (LoopConnection, consuming [ConnectionEvent]) -> Void
    ) {
        _ = fcntl(fileDescriptor, F_SETFL, fcntl(fileDescriptor, F_GETFL) | O_NONBLOCK)
        self.fileDescriptor = fileDescriptor
        self.loop = loop
        self.driver = ConnectionDriver(borrowing: fileDescriptor, mux: mux, options: options, telemetry: telemetry)
        self.onEvents = onEvents
    }

    package var loopEvents: UInt32 { isFinished ? 0 : UInt32(driver.interest.pollEvents) }
    package var loopDeadline: MonotonicInstant? { isFinished ? nil : driver.interest.monotonicDeadline }

    package func handle(revents: UInt32, now: ContinuousClock.Instant, loop: MuxEventLoop) {
        guard !isFinished else { return }
        deliver(driver.handle(revents: Int16(truncatingIfNeeded: revents), now: now), now: now)
    }

    /// Runs `body` with the driver on the loop's thread (at once when already there),
    /// then writes what it queued and updates the loop. For sends from other threads.
    package func withDriver(_ body: @escaping @Sendable (ConnectionDriver) -> Void) {
        if loop.inLoop {
            perform(body)
        } else {
            loop.execute { [self] in perform(body) }
        }
    }

    private func perform(_ body: (ConnectionDriver) -> Void) {
        guard !isFinished else { return }
        body(driver)
        let now = ContinuousClock.now
        deliver(driver.handle(revents: 0, now: now), now: now)  // writes what `body` queued
        loop.update(self)
    }

    private func deliver(_ events: consuming [ConnectionEvent], now: ContinuousClock.Instant) {
        guard !events.isEmpty else { return }
        if events.contains(where: \.isClosed) { isFinished = true }
        onEvents(self, consume events)  // handed over: the receiver may move events out
        if !isFinished { driver.flush(now: now) }
    }

    package func release() {
        _ = Glibc.close(fileDescriptor)
    }
}

/// A fixed pool of threads for work that may block (a handler reading a passed fd), so
/// it never runs on an event loop. Bounded: `threadCount` threads, whatever the load.
package final class WorkerPool: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var stopping = false
    private var threads: [OwnedThread] = []

    /// Starts `threadCount` threads (at least one).
    package init(threadCount: Int) throws(EndpointMuxError) {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        for _ in 0..<max(1, threadCount) {
            threads.append(try OwnedThread { [self] in work() })
        }
    }

    /// Queues `task`.
    package func submit(_ task: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        queue.append(task)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Lets queued tasks finish, then ends the threads.
    package func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
        for thread in threads { thread.join() }
    }

    private func work() {
        while true {
            pthread_mutex_lock(mutex)
            while head == queue.count && !stopping { pthread_cond_wait(condition, mutex) }
            if head == queue.count {
                pthread_mutex_unlock(mutex)
                return
            }
            let task = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
            pthread_mutex_unlock(mutex)
            task()
        }
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }
}
