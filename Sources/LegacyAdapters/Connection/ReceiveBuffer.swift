/// A connection's unconsumed input: bytes are appended at the tail by `recvmsg` and
/// consumed from the head after the mux decides. Consuming is O(1); the storage is
/// compacted only when the free tail runs short, so each byte is moved a bounded
/// number of times.
struct ReceiveBuffer {
    private var storage: [UInt8]
    private var head = 0
    private var tail = 0

    init(initialCapacity: Int = 64 * 1024) {
        storage = [UInt8](repeating: 0, count: initialCapacity)
    }

    var count: Int { tail - head }
    var isEmpty: Bool { head == tail }

    /// Calls `body` with the unconsumed bytes.
    func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result = storage.withUnsafeBytes { raw in
            Result { () throws(E) -> R in try body(UnsafeRawBufferPointer(rebasing: raw[head..<tail])) }
        }
        return try result.get()
    }

    /// The unconsumed bytes as an array (a copy).
    var bytes: [UInt8] { Array(storage[head..<tail]) }

    /// Drops `n` bytes from the front.
    mutating func consume(_ n: Int) {
        head += min(n, count)
        if head == tail { head = 0; tail = 0 }
    }

    /// Drops everything.
    mutating func removeAll() { head = 0; tail = 0 }

    /// Calls `body` with at least `minimumSpace` free bytes at the tail; `body` returns
    /// how many it filled.
    mutating func append<E: Error>(
        minimumSpace: Int, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> Int
    ) throws(E) -> Int {
        if storage.count - tail < minimumSpace {
            if head > 0 {
                storage.withUnsafeMutableBytes { raw in
                    if let base = raw.baseAddress, tail > head {
                        base.copyMemory(from: base + head, byteCount: tail - head)
                    }
                }
                tail -= head
                head = 0
            }
            if storage.count - tail < minimumSpace {
                storage += [UInt8](repeating: 0, count: max(minimumSpace - (storage.count - tail), storage.count))
            }
        }
        let start = tail
        let result = storage.withUnsafeMutableBytes { raw in
            Result { () throws(E) -> Int in try body(UnsafeMutableRawBufferPointer(rebasing: raw[start...])) }
        }
        let filled = try result.get()
        tail += max(0, filled)
        return filled
    }
}
