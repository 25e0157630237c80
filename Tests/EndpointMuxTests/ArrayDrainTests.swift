import Testing

@testable import EndpointMux

@Suite struct ArrayDrainTests {
    final class Box {
        let value: Int
        init(_ value: Int) { self.value = value }
    }

    @Test func drainHandsEveryElementOverInOrderByMoveAndKeepsTheCapacity() {
        var boxes = (0..<100).map { Box($0) }
        let capacity = boxes.capacity
        var seen: [Int] = []
        var allUnique = true
        func take(_ box: consuming Box) {
            // Moved, not copied: the array no longer holds a reference to it.
            var owned = consume box
            allUnique = allUnique && isKnownUniquelyReferenced(&owned)
            seen.append(owned.value)
        }
        boxes.drain(placeholder: Box(-1), take)
        #expect(seen == Array(0..<100))
        #expect(allUnique)
        #expect(boxes.isEmpty)
        #expect(boxes.capacity == capacity)
        boxes.drain(placeholder: Box(-1)) { _ in Issue.record("an empty array has nothing to drain") }
    }
}
