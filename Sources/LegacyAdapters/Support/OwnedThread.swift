@_spi(Internals) import EndpointMux
import Glibc

/// A thread this library creates and owns, so it may block in `poll(2)` without taking
/// a thread from the daemon or from Swift concurrency's pool.
final class OwnedThread: @unchecked Sendable {
    // `handle` is written once in `init` before any other access, then only read by `join`.
    private var handle = pthread_t()
    private var joined = false
    private let lock = NSLockLike()

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Starts `body` on a new thread.
    init(_ body: @escaping @Sendable () -> Void) throws(EndpointMuxError) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let result = pthread_create(
            &handle, nil,
            { argument in
                guard let argument else { return nil }
                let box = Unmanaged<Box>.fromOpaque(argument).takeRetainedValue()
                box.body()
                return nil
            }, box)
        guard result == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw .system(operation: "pthread_create", errno: result)
        }
    }

    /// Lets the thread finish on its own (no join); later `join` calls return at once.
    func detach() {
        let shouldDetach = lock.withLock { () -> Bool in
            defer { joined = true }
            return !joined
        }
        if shouldDetach { pthread_detach(handle) }
    }

    /// Starts `body` on a new detached thread (its resources are freed when it ends).
    static func detached(_ body: @escaping @Sendable () -> Void) throws(EndpointMuxError) {
        try OwnedThread(body).detach()
    }

    /// Waits for the thread to end (once; later calls return at once).
    func join() {
        let shouldJoin = lock.withLock { () -> Bool in
            defer { joined = true }
            return !joined
        }
        if shouldJoin { pthread_join(handle, nil) }
    }
}

/// A pthread mutex for the few places that need one.
final class NSLockLike: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R: ~Copyable>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
