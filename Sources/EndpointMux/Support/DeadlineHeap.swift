/// Deadlines by instant, each with a key: a binary min-heap with lazy removal (an entry
/// whose key is no longer wanted stays until it reaches the top, where the owner skips or
/// discards it). The timers of the event loops and of the broker's waiting requests.
package struct DeadlineHeap<Key: Sendable>: Sendable {
    private var entries: [(deadline: MonotonicInstant, key: Key)] = []

    package init() {}

    /// The earliest deadline, stale or not.
    package var earliest: MonotonicInstant? { entries.first?.deadline }

    package mutating func push(_ deadline: MonotonicInstant, _ key: Key) {
        entries.append((deadline, key))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].deadline < entries[parent].deadline else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    /// The earliest entry due at `now`, removed.
    package mutating func popDue(now: MonotonicInstant) -> (deadline: MonotonicInstant, key: Key)? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        popFirst()
        return first
    }

    /// Removes entries from the top while `isStale` says so, so ``earliest`` is a live one.
    package mutating func discardStale(_ isStale: (Key) -> Bool) {
        while let first = entries.first, isStale(first.key) { popFirst() }
    }

    private mutating func popFirst() {
        let last = entries.removeLast()
        guard !entries.isEmpty else { return }
        entries[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < entries.count, entries[left].deadline < entries[smallest].deadline { smallest = left }
            if right < entries.count, entries[right].deadline < entries[smallest].deadline { smallest = right }
            guard smallest != parent else { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
