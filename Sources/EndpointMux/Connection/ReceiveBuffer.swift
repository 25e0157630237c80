/// A connection's unconsumed input: bytes are appended at the tail by reads and consumed
/// from the head after the mux decides. Consuming is O(1); the storage is compacted only
/// when the free tail runs short, so each byte is moved a bounded number of times.
///
/// Storage exists only while there is input: it is allocated when a read needs room and
/// released as soon as every byte has been consumed, so an idle connection holds none.
package struct ReceiveBuffer: Sendable {
    private var storage: [UInt8] = []
    private var head = 0
    private var tail = 0

    /// An empty buffer; no storage until the first append.
    package init() {}

    /// An empty buffer; `initialCapacity` is a hint (storage is still allocated on first use).
    package init(initialCapacity: Int) {}

    package var count: Int { tail - head }
    package var isEmpty: Bool { head == tail }
    /// Bytes of storage held (0 when empty).
    package var capacity: Int { storage.count }

    /// Calls `body` with the unconsumed bytes.
    package func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result = storage.withUnsafeBytes { raw in
            Result { () throws(E) -> R in try body(UnsafeRawBufferPointer(rebasing: raw[head..<tail])) }
        }
        return try result.get()
    }

    /// The unconsumed bytes as an array (a copy).
    package var bytes: [UInt8] { Array(storage[head..<tail]) }

    /// Drops `n` bytes from the front; releases the storage when nothing is left.
    package mutating func consume(_ n: Int) {
        head += min(max(0, n), count)
        if head == tail { removeAll() }
    }

    /// Hands the storage over as an array of the unconsumed bytes in `range` (offsets from
    /// the first unconsumed byte), moved to its front in place: no allocation and no second
    /// buffer, for a payload that fills the buffer. The buffer is empty afterwards.
    package mutating func take(_ range: Range<Int>) -> [UInt8] {
        let start = head + max(0, range.lowerBound)
        let count = max(0, min(range.count, tail - start))
        var taken = storage
        removeAll()
        taken.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress, start > 0, count > 0 {
                base.copyMemory(from: base + start, byteCount: count)  // memmove: overlap is fine
            }
        }
        taken.removeLast(taken.count - count)
        return taken
    }

    /// Drops everything and releases the storage.
    package mutating func removeAll() {
        head = 0
        tail = 0
        storage = []
    }

    /// Calls `body` with at least `minimumSpace` free bytes at the tail; `body` returns
    /// how many it filled. Storage emptied by `body` filling nothing is released again.
    package mutating func append<E: Error>(
        minimumSpace: Int, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> Int
    ) throws(E) -> Int {
        reserve(minimumSpace)
        let start = tail
        let result = storage.withUnsafeMutableBytes { raw in
            Result { () throws(E) -> Int in try body(UnsafeMutableRawBufferPointer(rebasing: raw[start...])) }
        }
        let filled: Int
        do {
            filled = try result.get()
        } catch {
            if isEmpty { removeAll() }
            throw error
        }
        tail += max(0, min(filled, storage.count - start))
        if isEmpty { removeAll() }
        return filled
    }

    /// Appends a copy of `bytes`.
    package mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        _ = append(minimumSpace: bytes.count) { space in
            space.copyMemory(from: bytes)
            return bytes.count
        }
    }

    private mutating func reserve(_ minimumSpace: Int) {
        guard storage.count - tail < minimumSpace else { return }
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
            // New storage is not zero-filled: only bytes a read wrote are ever looked at.
            let grown = max(tail + minimumSpace, storage.count * 2)
            let live = tail
            let old = storage
            storage = [UInt8](unsafeUninitializedCapacity: grown) { buffer, initialized in
                if live > 0, let base = buffer.baseAddress {
                    old.withUnsafeBufferPointer { source in
                        if let from = source.baseAddress { base.update(from: from, count: live) }
                    }
                }
                initialized = grown
            }
        }
    }
}
