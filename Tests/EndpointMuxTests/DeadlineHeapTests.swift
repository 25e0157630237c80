import Testing
@_spi(Internals) @testable import EndpointMux

@Suite struct DeadlineHeapTests {
    @Test func popsDueEntriesInDeadlineOrderAndDiscardsStaleTops() {
        let t0 = MonotonicInstant(.now)
        var g = SystemRandomNumberGenerator()
        var heap = DeadlineHeap<Int>()
        let offsets = (0..<500).map { _ in Int.random(in: 0..<1000, using: &g) }
        for (key, offset) in offsets.enumerated() { heap.push(t0 + .milliseconds(offset), key) }
        #expect(heap.earliest == t0 + .milliseconds(offsets.min() ?? 0))
        // Nothing is due before its instant.
        #expect(heap.popDue(now: t0 - .milliseconds(1)) == nil)
        // Odd keys are stale: discarded from the top, skipped by the owner below them.
        heap.discardStale { $0 % 2 == 1 }
        var popped: [(Duration, Int)] = []
        while let entry = heap.popDue(now: t0 + .milliseconds(499)) {
            popped.append((entry.deadline - t0, entry.key))
            heap.discardStale { $0 % 2 == 1 }
        }
        let expected = offsets.enumerated().filter { $0.offset % 2 == 0 && $0.element <= 499 }
            .map { Duration.milliseconds($0.element) }.sorted()
        #expect(popped.map(\.0) == expected)
        #expect(popped.allSatisfy { $0.1 % 2 == 0 })
        #expect((heap.earliest ?? t0) > t0 + .milliseconds(499))
    }
}
