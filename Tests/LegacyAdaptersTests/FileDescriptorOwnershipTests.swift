import Foundation
import Testing
@testable import LegacyAdapters

extension FileDescriptorSuites {
    @Suite("OwnedFileDescriptor")
    struct OwnedFileDescriptorTests {
        @Test func closesOnDeinit() throws {
            try expectNoFileDescriptorLeaks {
                let before = OpenFileDescriptorCount.current()
                let raw = try makePipe(holding: "x")
                do {
                    let owned = OwnedFileDescriptor(taking: raw)
                    let value = owned.rawValue
                    #expect(value == raw)
                    #expect(OpenFileDescriptorCount.current() == before + 1)
                }
                #expect(!isOpen(raw))
            }
        }

        @Test func closeClosesOnce() throws {
            try expectNoFileDescriptorLeaks {
                let raw = try makePipe(holding: "x")
                let owned = OwnedFileDescriptor(taking: raw)
                owned.close()
                #expect(!isOpen(raw))
            }
        }

        @Test func releaseGivesUpOwnership() throws {
            try expectNoFileDescriptorLeaks {
                let raw = try makePipe(holding: "kept")
                let owned = OwnedFileDescriptor(taking: raw)
                let released = owned.release()
                #expect(released == raw)
                #expect(isOpen(raw))
                #expect(contents(of: raw) == "kept")
                close(raw)
            }
        }
    }

    @Suite("FileDescriptorQueue")
    struct FileDescriptorQueueTests {
        @Test func popFirstIsFIFO() throws {
            try expectNoFileDescriptorLeaks {
                var queue = queue(owning: try makePipes(5))
                let count = queue.count
                #expect(count == 5)
                var seen: [String] = []
                while let fd = queue.popFirst() {
                    seen.append(contents(of: fd.rawValue))
                }
                #expect(seen == pipeContents(5))
                let isEmpty = queue.isEmpty
                #expect(isEmpty)
                var gotOneMore = false
                if queue.popFirst() != nil { gotOneMore = true }
                #expect(!gotOneMore)
            }
        }

        @Test func appendOwnedAndRaw() throws {
            try expectNoFileDescriptorLeaks {
                let fds = try makePipes(3)
                var queue = FileDescriptorQueue()
                queue.append(OwnedFileDescriptor(taking: fds[0]))
                queue.append(takingRawValues: fds[1...])
                let rawValues = queue.rawValues
                #expect(rawValues == fds)
                queue.withRawValues { buffer in
                    #expect(Array(buffer) == fds)
                }
            }
        }

        @Test func dequeueTakesTheFrontAndClamps() throws {
            try expectNoFileDescriptorLeaks {
                var queue = queue(owning: try makePipes(5))
                let none = queue.dequeue(0).count
                let negative = queue.dequeue(-3).count
                #expect(none == 0 && negative == 0)
                var first = queue.dequeue(3)
                let (firstCount, leftAfterFirst) = (first.count, queue.count)
                #expect(firstCount == 3 && leftAfterFirst == 2)
                var rest = queue.dequeue(10)
                let (restCount, leftAfterRest) = (rest.count, queue.count)
                #expect(restCount == 2 && leftAfterRest == 0)
                var seen: [String] = []
                while let fd = first.popFirst() { seen.append(contents(of: fd.rawValue)) }
                while let fd = rest.popFirst() { seen.append(contents(of: fd.rawValue)) }
                #expect(seen == pipeContents(5))
            }
        }

        @Test func deinitClosesEveryRemainingDescriptor() throws {
            try expectNoFileDescriptorLeaks {
                let before = OpenFileDescriptorCount.current()
                let fds = try makePipes(10)
                do {
                    var queue = queue(owning: fds)
                    _ = queue.popFirst()  // closed right away
                    #expect(OpenFileDescriptorCount.current() == before + 9)
                }
                #expect(fds.allSatisfy { !isOpen($0) })
            }
        }

        @Test func closeAllEmptiesAndCloses() throws {
            try expectNoFileDescriptorLeaks {
                let fds = try makePipes(4)
                var queue = queue(owning: fds)
                queue.closeAll()
                let isEmpty = queue.isEmpty
                #expect(isEmpty)
                #expect(fds.allSatisfy { !isOpen($0) })
            }
        }

        @Test func releaseAllHandsOverInOrder() throws {
            try expectNoFileDescriptorLeaks {
                var queue = queue(owning: try makePipes(4))
                _ = queue.popFirst()
                let released = queue.releaseAll()
                #expect(released.count == 3)
                #expect(released.allSatisfy(isOpen))
                #expect(released.map(contents(of:)) == ["fd-1", "fd-2", "fd-3"])
                released.forEach { close($0) }
            }
        }

        @Test func orderSurvivesCompaction() throws {
            try expectNoFileDescriptorLeaks {
                let fds = try makePipes(300)
                var queue = queue(owning: Array(fds[0..<200]))
                for _ in 0..<150 { queue.popFirst()?.close() }
                queue.append(takingRawValues: fds[200...])
                let afterAppend = queue.rawValues
                #expect(afterAppend == Array(fds[150...]))
                var taken = queue.dequeue(100)
                let (takenValues, leftValues) = (taken.rawValues, queue.rawValues)
                #expect(takenValues == Array(fds[150..<250]))
                #expect(leftValues == Array(fds[250...]))
                taken.closeAll()
                var next = "none"
                if let first = queue.popFirst() { next = contents(of: first.rawValue) }
                #expect(next == "fd-250")
            }
        }
    }
}
