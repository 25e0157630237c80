import CSocketShims
@_spi(Internals) package import EndpointMux
import Glibc

/// Something a ``MuxEventLoop`` waits on: an fd, the events it wants, and a deadline.
/// Touched only on its loop's thread.
package protocol LoopSource: AnyObject {
    /// The fd (owned by the source; it closes it when it is done).
    var fileDescriptor: Int32 { get }
    /// `EPOLLIN` (1) / `EPOLLOUT` (4) bits wanted now; 0 takes the fd out of the epoll set
    /// (so a hung-up peer cannot wake the loop for a source that wants nothing).
    var loopEvents: UInt32 { get }
    /// When to be called with no readiness (timers), if ever.
    var loopDeadline: MonotonicInstant? { get }
    /// Readiness (`revents`, 0 for a deadline) at `now`.
    func handle(revents: UInt32, now: ContinuousClock.Instant, loop: MuxEventLoop)
    /// Whether the source is finished: the loop takes it out of the epoll set, then calls
    /// ``release()``.
    var isFinished: Bool { get }
    /// Called once after the loop forgot a finished source: close the fd now.
    func release()
}

/// One thread waiting with `epoll` on many sources (connections, listeners), with a
/// deadline heap for their timers and an `eventfd` for work submitted from other threads.
/// No thread and no pipe per connection; no busy-waiting: the loop sleeps in
/// `epoll_wait` until readiness, the earliest deadline, or submitted work.
package final class MuxEventLoop: @unchecked Sendable {
    private let epoll: Int32
    private let wake: Int32
    private let lock = NSLockLike()
    private var tasks: [@Sendable () -> Void] = []
    private var stopRequested = false
    private var thread: OwnedThread?
    /// The loop thread's id, to tell whether a caller is on it.
    private var loopThread: pthread_t?

    // Loop thread only.
    private var sources: [Int32: any LoopSource] = [:]
    private var registered: [Int32: UInt32] = [:]
    private var scheduled: [Int32: (deadline: MonotonicInstant, generation: UInt64)] = [:]
    private var timers = DeadlineHeap<TimerKey>()
    private var generation: UInt64 = 0

    /// Starts a loop on a thread of its own.
    package init() throws(EndpointMuxError) {
        let epoll = endpointmux_epoll_create()
        guard epoll >= 0 else { throw .system(operation: "epoll_create1", errno: errno) }
        let wake = endpointmux_eventfd()
        guard wake >= 0 else {
            let failure = errno
            _ = Glibc.close(epoll)
            throw .system(operation: "eventfd", errno: failure)
        }
        self.epoll = epoll
        self.wake = wake
        _ = endpointmux_epoll_ctl(epoll, 1, wake, 1)
        do {
            thread = try OwnedThread { [self] in run() }
        } catch {
            _ = Glibc.close(epoll)
            _ = Glibc.close(wake)
            throw error
        }
    }

    /// Whether the caller runs on this loop's thread.
    package var inLoop: Bool {
        guard let loopThread = lock.withLock({ self.loopThread }) else { return false }
        return pthread_equal(loopThread, pthread_self()) != 0
    }

    /// Runs `task` on the loop's thread, soon (never inline).
    package func execute(_ task: @escaping @Sendable () -> Void) {
        let first = lock.withLock { () -> Bool in
            tasks.append(task)
            return tasks.count == 1
        }
        if first { signal() }
    }

    /// Adds `source` (call on the loop's thread, e.g. from ``execute(_:)``).
    package func register(_ source: any LoopSource) {
        sources[source.fileDescriptor] = source
        update(source)
    }

    /// Re-reads `source`'s events and deadline after it changed outside ``LoopSource/handle(revents:now:loop:)``
    /// (call on the loop's thread).
    package func update(_ source: any LoopSource) {
        let fd = source.fileDescriptor
        if source.isFinished {
            if sources[fd] === source {
                forget(fd)
                source.release()
            }
            return
        }
        let wanted = source.loopEvents
        let current = registered[fd] ?? 0
        if wanted != current {
            if wanted == 0 {
                _ = endpointmux_epoll_ctl(epoll, 2, fd, 0)
                registered[fd] = nil
            } else if current == 0 {
                _ = endpointmux_epoll_ctl(epoll, 1, fd, wanted)
                registered[fd] = wanted
            } else {
                _ = endpointmux_epoll_ctl(epoll, 3, fd, wanted)
                registered[fd] = wanted
            }
        }
        let deadline = source.loopDeadline
        if deadline != scheduled[fd]?.deadline {
            if let deadline {
                generation &+= 1
                scheduled[fd] = (deadline, generation)
                timers.push(deadline, TimerKey(fd: fd, generation: generation))
            } else {
                scheduled[fd] = nil
            }
        }
    }

    /// Stops the loop after the tasks already submitted; sources still registered are
    /// left to their owners (who stopped them first). Returns once the thread ended.
    package func stop() {
        lock.withLock { stopRequested = true }
        signal()
        thread?.join()
    }

    deinit {
        _ = Glibc.close(epoll)
        _ = Glibc.close(wake)
    }

    private func forget(_ fd: Int32) {
        if registered[fd] != nil { _ = endpointmux_epoll_ctl(epoll, 2, fd, 0) }
        registered[fd] = nil
        scheduled[fd] = nil
        sources[fd] = nil
    }

    private func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wake, $0.baseAddress, 8) }
    }

    private func run() {
        lock.withLock { loopThread = pthread_self() }
        var fds = [Int32](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        while true {
            let (pending, stopping) = lock.withLock { () -> ([@Sendable () -> Void], Bool) in
                defer { tasks = [] }
                return (tasks, stopRequested)
            }
            for task in pending { task() }
            if stopping { break }
            var timeout: Int32 = -1
            if let next = timers.earliest {
                timeout = next.pollTimeout(now: MonotonicInstant(.now))
            }
            let count = fds.withUnsafeMutableBufferPointer { fdBuffer in
                events.withUnsafeMutableBufferPointer { eventBuffer in
                    endpointmux_epoll_wait(epoll, fdBuffer.baseAddress, eventBuffer.baseAddress, 256, timeout)
                }
            }
            let now = ContinuousClock.now
            if count > 0 {
                for index in 0..<Int(count) {
                    let fd = fds[index]
                    if fd == wake {
                        var value: UInt64 = 0
                        _ = withUnsafeMutableBytes(of: &value) { read(wake, $0.baseAddress, 8) }
                        continue
                    }
                    guard let source = sources[fd] else { continue }
                    source.handle(revents: events[index], now: now, loop: self)
                    update(source)
                }
            }
            // Take the due timers first: a source that asks to be called again at once
            // (a deferred end, a paused turn) runs in the next iteration, at a later
            // instant, instead of spinning here with this one.
            var due: [TimerKey] = []
            let dueBy = MonotonicInstant(now)
            while let entry = timers.popDue(now: dueBy) { due.append(entry.key) }
            for due in due {
                guard let entry = scheduled[due.fd], entry.generation == due.generation,
                    let source = sources[due.fd]
                else { continue }
                scheduled[due.fd] = nil
                source.handle(revents: 0, now: now, loop: self)
                update(source)
            }
        }
    }
}

/// A fixed set of ``MuxEventLoop``s (one per core by default) that connections are
/// spread over.
package final class MuxEventLoopGroup: Sendable {
    package let loops: [MuxEventLoop]
    private let nextIndex = Counter()

    /// Starts `count` loops (at least one).
    package init(loopCount count: Int = MuxEventLoopGroup.coreCount) throws(EndpointMuxError) {
        var loops: [MuxEventLoop] = []
        for _ in 0..<max(1, count) { loops.append(try MuxEventLoop()) }
        self.loops = loops
    }

    /// The next loop, round robin.
    package func next() -> MuxEventLoop {
        loops[nextIndex.increment() % loops.count]
    }

    /// Processors online.
    package static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Stops every loop.
    package func stop() { for loop in loops { loop.stop() } }

    /// The process-wide group `AsyncConnection` uses (started on first use, never stopped).
    package static let shared: MuxEventLoopGroup? = try? MuxEventLoopGroup()
}

/// A thread-safe counter.
final class Counter: @unchecked Sendable {
    private let lock = NSLockLike()
    private var value = 0
    func increment() -> Int {
        lock.withLock {
            defer { value &+= 1 }; return value
        }
    }
}

/// Which source a loop timer is for, and which of its deadlines (stale ones are skipped).
struct TimerKey: Sendable {
    var fd: Int32
    var generation: UInt64
}
