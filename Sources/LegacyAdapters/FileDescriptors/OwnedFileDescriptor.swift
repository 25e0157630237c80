import Glibc

/// Closes `fd` once (negative values are skipped). `EINTR` is ignored and the call is never
/// retried: on Linux the descriptor is released even when `close` is interrupted, so a retry
/// could close a descriptor another thread has just been given.
@inline(__always)
func closeOnce(_ fd: Int32) {
    if fd >= 0 {
        _ = close(fd)
    }
}

/// Sole owner of one open file descriptor; closes it when the value is destroyed.
///
/// The descriptor is closed exactly once: by ``close()``, or by `deinit` if neither
/// ``close()`` nor ``release()`` consumed the value first. Being `~Copyable`, an owner
/// cannot be duplicated, so two owners of the same descriptor cannot arise by accident.
public struct OwnedFileDescriptor: ~Copyable, Sendable {
    private let fd: Int32

    /// Takes ownership of `rawValue`, an open descriptor nobody else will close. (A
    /// negative value is held but never closed.)
    public init(taking rawValue: Int32) {
        self.fd = rawValue
    }

    /// The descriptor number, valid while this owner is alive. Do not close it.
    public var rawValue: Int32 {
        fd
    }

    /// Gives up ownership without closing: the caller becomes responsible for the
    /// returned descriptor.
    public consuming func release() -> Int32 {
        let fd = self.fd
        discard self
        return fd
    }

    /// Closes the descriptor now. Errors from `close(2)` (including `EINTR`) are ignored;
    /// the descriptor is released either way and the call is never retried.
    public consuming func close() {
        let fd = self.fd
        discard self
        closeOnce(fd)
    }

    deinit {
        closeOnce(fd)
    }
}

/// An ordered FIFO of owned file descriptors, as received over one connection.
///
/// The queue owns every descriptor in it: those still queued when it is destroyed are
/// closed. Descriptors leave in the order they arrived, through ``popFirst()``,
/// `dequeue(_:)` or ``releaseAll()``. Appending and removing from the front are
/// amortised O(1).
public struct FileDescriptorQueue: ~Copyable, Sendable {
    /// Storage; the live descriptors are `storage[head...]`.
    private var storage: [Int32]
    private var head: Int

    /// Creates an empty queue.
    public init() {
        storage = []
        head = 0
    }

    /// The number of queued descriptors.
    public var count: Int {
        storage.count - head
    }

    /// Whether no descriptor is queued.
    public var isEmpty: Bool {
        head == storage.count
    }

    /// The queued descriptor numbers, front first. The queue still owns them: do not
    /// close them, and do not use them after the queue has closed or handed them on.
    package var rawValues: [Int32] {
        Array(storage[head...])
    }

    /// Calls `body` with the queued descriptor numbers, front first, without copying.
    /// The same ownership rules as ``rawValues`` apply; the buffer is valid only
    /// inside `body`.
    package func withRawValues<R, E: Error>(
        _ body: (UnsafeBufferPointer<Int32>) throws(E) -> R
    ) throws(E) -> R {
        let result: Result<R, E> = storage.withUnsafeBufferPointer { all in
            let live = UnsafeBufferPointer(rebasing: all[head...])
            do throws(E) {
                return .success(try body(live))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Appends `fd` at the back; the queue takes ownership.
    public mutating func append(_ fd: consuming OwnedFileDescriptor) {
        storage.append(fd.release())
    }

    /// Appends each of `rawValues` at the back, in order; the queue takes ownership of
    /// all of them.
    package mutating func append(takingRawValues rawValues: some Collection<Int32>) {
        storage.append(contentsOf: rawValues)
    }

    /// Removes and returns the front descriptor, or `nil` when the queue is empty.
    public mutating func popFirst() -> OwnedFileDescriptor? {
        guard head < storage.count else { return nil }
        let fd = storage[head]
        head += 1
        compactIfWorthwhile()
        return OwnedFileDescriptor(taking: fd)
    }

    /// Removes the first `min(n, count)` descriptors (none when `n <= 0`) and returns
    /// them, in order, as a new queue that owns them.
    package mutating func dequeue(_ n: Int) -> FileDescriptorQueue {
        let taken = Swift.max(0, Swift.min(n, count))
        var result = FileDescriptorQueue()
        guard taken > 0 else { return result }
        result.storage.append(contentsOf: storage[head..<(head + taken)])
        head += taken
        compactIfWorthwhile()
        return result
    }

    /// Closes every queued descriptor and empties the queue.
    public mutating func closeAll() {
        for fd in storage[head...] {
            closeOnce(fd)
        }
        storage.removeAll()
        head = 0
    }

    /// Empties the queue without closing anything and returns the descriptors, front
    /// first; the caller becomes responsible for closing them.
    public consuming func releaseAll() -> [Int32] {
        let fds = Array(storage[head...])
        storage.removeAll()
        head = 0
        return fds
    }

    /// The first `n` descriptor numbers (`n <= count`), still owned by the queue.
    func prefixRawValues(_ n: Int) -> ArraySlice<Int32> {
        storage[head..<(head + n)]
    }

    /// Closes and removes the first `min(n, count)` descriptors.
    mutating func closeFirst(_ n: Int) {
        let closing = Swift.max(0, Swift.min(n, count))
        for fd in storage[head..<(head + closing)] {
            closeOnce(fd)
        }
        head += closing
        compactIfWorthwhile()
    }

    /// Appends one descriptor the queue now owns.
    mutating func appendRawValue(_ fd: Int32) {
        storage.append(fd)
    }

    /// Closes and removes the last `min(n, count)` descriptors.
    mutating func closeLast(_ n: Int) {
        let closing = Swift.max(0, Swift.min(n, count))
        for fd in storage[(storage.count - closing)...] {
            closeOnce(fd)
        }
        storage.removeLast(closing)
        compactIfWorthwhile()
    }

    /// Drops consumed slots once they make up at least half of the storage.
    private mutating func compactIfWorthwhile() {
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.count <= 1024)
            head = 0
        } else if head >= 64 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }

    deinit {
        for fd in storage[head...] {
            closeOnce(fd)
        }
    }
}
