@_spi(Internals) import EndpointMux
import Foundation
import Testing
@testable import LegacyAdapters

extension FileDescriptorSuites {
    @Suite("OutboundQueue")
    struct OutboundQueueTests {
        /// Per-`recvmsg` descriptor counts on Linux for one small message from a fresh queue
        /// (limit 500): above 253 the kernel says EINVAL and the batch is halved.
        static let expectedBatches: [Int: [Int]] = [
            1: [1], 3: [3], 253: [253], 254: [127, 127], 600: [250, 250, 100],
        ]

        @Test(arguments: [1, 3, 253, 254, 600])
        func oneMessageEachWay(fdCount: Int) throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                for (sender, receiver) in [(a, b), (b, a)] {
                    let message = Array("{\"jsonrpc\":\"2.0\",\"method\":\"take\",\"fds\":\(fdCount)}".utf8)
                    var queue = OutboundQueue()
                    queue.enqueue(message, fileDescriptors: FileDescriptorQueue.owning(try makePipes(fdCount)))
                    let queued = OutboundState(queue)
                    #expect(
                        queued
                            == OutboundState(
                                pendingBytes: message.count, pendingFileDescriptors: fdCount, isEmpty: false, limit: 500
                            ))
                    try queue.flushBlocking(to: sender, deadline: .now + .seconds(30))
                    let flushed = OutboundState(queue)
                    #expect(flushed.isEmpty && flushed.pendingBytes == 0 && flushed.pendingFileDescriptors == 0)

                    let batches = try #require(Self.expectedBatches[fdCount])
                    let spaces = batches.count - 1
                    let log = try receiveLog(from: receiver, byteCount: message.count + spaces, fdCount: fdCount)
                    #expect(log.fdCountsPerCall == batches)
                    #expect(log.calls.map(\.bytes) == [message.count] + Array(repeating: 1, count: spaces))
                    #expect(log.bytes == message + Array(repeating: 0x20, count: spaces))
                    #expect(log.contents == pipeContents(fdCount))
                    #expect(flushed.limit == (batches.count > 1 ? batches[0] : 500))
                    try expectNothingMore(on: receiver)
                }
            }
        }

        @Test func continuationBytesAreSingleSpaces() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                var queue = OutboundQueue(maxFileDescriptorsPerSendmsg: 1)
                queue.enqueue(Array("{}".utf8), fileDescriptors: .owning(try makePipes(4)))
                let outcome = try queue.flush(to: a)
                #expect(outcome == .flushed)
                let log = try receiveLog(from: b, byteCount: 5, fdCount: 4)
                #expect(
                    log.calls == [
                        .init(bytes: 2, fds: 1), .init(bytes: 1, fds: 1), .init(bytes: 1, fds: 1),
                        .init(bytes: 1, fds: 1),
                    ])
                #expect(log.bytes == Array("{}   ".utf8))
                #expect(log.contents == pipeContents(4))
                try expectNothingMore(on: b)
            }
        }

        @Test func aLoweredLimitIsRememberedAndMessagesKeepTheirDescriptors() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                let pipes = try makePipes(905)
                var queue = OutboundQueue()
                queue.enqueue(Array("[1]".utf8), fileDescriptors: .owning(Array(pipes[0..<600])))
                queue.enqueue(Array("[2]".utf8))
                queue.enqueue(Array("[3]".utf8), fileDescriptors: .owning(Array(pipes[600..<900])))
                queue.enqueue([], fileDescriptors: .owning(Array(pipes[900...])))  // descriptors only
                queue.enqueue([])  // nothing at all: ignored
                #expect(OutboundState(queue).pendingBytes == 9)
                let outcome = try queue.flush(to: a)
                #expect(outcome == .flushed)
                #expect(OutboundState(queue).limit == 250)
                // [1]+250, " "+250, " "+100, [2] with [3]+250 (plain bytes run on into the
                // next descriptor-carrying skb), " "+50, " "+5.
                let log = try receiveLog(from: b, byteCount: 9 + 4, fdCount: 905)
                #expect(log.fdCountsPerCall == [250, 250, 100, 250, 50, 5])
                #expect(String(decoding: log.bytes, as: UTF8.self) == "[1]  [2][3]  ")
                #expect(log.contents == pipeContents(905))
            }
        }

        @Test func settingTheLimitKeepsItAtLeastOne() {
            var queue = OutboundQueue(maxFileDescriptorsPerSendmsg: 0)
            let initial = queue.maxFileDescriptorsPerSendmsg
            queue.maxFileDescriptorsPerSendmsg = 200
            let raised = queue.maxFileDescriptorsPerSendmsg
            queue.maxFileDescriptorsPerSendmsg = -5
            let lowered = queue.maxFileDescriptorsPerSendmsg
            queue.maxFileDescriptorsPerSendmsg = .max
            let capped = queue.maxFileDescriptorsPerSendmsg
            #expect([initial, raised, lowered, capped] == [1, 200, 1, SocketIO.maxFileDescriptorsPerCall] as [Int])
        }

        /// 4 MiB and 300 descriptors through a small send buffer on a non-blocking socket,
        /// while a reader on another thread drains the other end.
        @Test func partialWritesOnANonBlockingSocket() async throws {
            try await expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                var small: Int32 = 4096
                guard setsockopt(a, SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                    throw FixtureError(operation: "setsockopt", errno: errno)
                }
                try SocketIO.setNonBlocking(a, true)
                let message = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 13) }
                let pipes = try makePipes(300)
                let readerMayStart = DispatchSemaphore(value: 0)

                async let writer: (first: OutboundQueue.FlushOutcome, wouldBlocks: Int) = onDedicatedThread {
                    var signalled = false
                    defer {
                        shutdown(a, Int32(SHUT_WR))  // the reader sees EOF even if this throws
                        if !signalled { readerMayStart.signal() }
                    }
                    var queue = OutboundQueue()
                    queue.enqueue(message, fileDescriptors: .owning(pipes))
                    let first = try queue.flush(to: a)
                    readerMayStart.signal()
                    signalled = true
                    var wouldBlocks = first == .wouldBlock ? 1 : 0
                    while try queue.flush(to: a) == .wouldBlock {
                        wouldBlocks += 1
                        guard try SocketIO.waitUntilWritable(a, timeout: .seconds(30)) else {
                            throw EndpointMuxError.timedOut(operation: "test flush")
                        }
                    }
                    return (first, wouldBlocks)
                }
                async let reader: ReceiveLog = onDedicatedThread {
                    readerMayStart.wait()
                    return try receiveLog(from: b, untilEndOfFile: true)
                }
                let (written, log) = try await (writer, reader)
                #expect(written.first == .wouldBlock)
                #expect(written.wouldBlocks > 1)
                #expect(log.sawEndOfFile)
                #expect(log.bytes.count == message.count)
                #expect(log.bytes == message)
                // 300 > 253: EINVAL, limit 300 / 2; 150 ride on the first chunk, 150 on the next.
                #expect(log.fdCountsPerCall.filter { $0 > 0 } == [150, 150])
                #expect(log.contents == pipeContents(300))
            }
        }

        @Test func aVanishedPeerIsEPIPEAndTheQueueKeepsItsDescriptors() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a) }
                close(b)
                var queue = OutboundQueue()
                queue.enqueue(Array("{}".utf8), fileDescriptors: .owning(try makePipes(3)))
                #expect(throws: EndpointMuxError.system(operation: "sendmsg", errno: EPIPE)) {
                    _ = try queue.flush(to: a)
                }
                #expect(
                    OutboundState(queue)
                        == OutboundState(pendingBytes: 2, pendingFileDescriptors: 3, isEmpty: false, limit: 500))
            }  // the queue's deinit closed the three pipes
        }

        @Test func flushBlockingStopsAtItsDeadline() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                try SocketIO.setNonBlocking(a, true)
                var queue = OutboundQueue()
                queue.enqueue([UInt8](repeating: 0x41, count: 4 << 20), fileDescriptors: .owning(try makePipes(2)))
                let clock = ContinuousClock()
                let start = clock.now
                #expect(throws: EndpointMuxError.timedOut(operation: "sendmsg")) {
                    try queue.flushBlocking(to: a, deadline: start + .milliseconds(100))
                }
                #expect(clock.now - start >= .milliseconds(100))
                let state = OutboundState(queue)
                #expect(state.pendingBytes > 0 && !state.isEmpty)
                #expect(state.pendingFileDescriptors == 0)  // they went with the first chunk
            }
        }

        /// After everything expected arrived, nothing else is waiting on `fd`.
        private func expectNothingMore(on fd: Int32) throws {
            try SocketIO.setNonBlocking(fd, true)
            defer { try? SocketIO.setNonBlocking(fd, false) }
            var queue = FileDescriptorQueue()
            var buffer = [UInt8](repeating: 0, count: 16)
            let outcome = try buffer.withUnsafeMutableBytes {
                try SocketIO.receive(from: fd, into: $0, fileDescriptors: &queue)
            }
            #expect(outcome == .wouldBlock)
        }
    }
}

/// A copy of an outbound queue's counters, for `#expect` (which needs copyable operands).
struct OutboundState: Equatable {
    var pendingBytes: Int
    var pendingFileDescriptors: Int
    var isEmpty: Bool
    var limit: Int

    init(pendingBytes: Int, pendingFileDescriptors: Int, isEmpty: Bool, limit: Int) {
        self.pendingBytes = pendingBytes
        self.pendingFileDescriptors = pendingFileDescriptors
        self.isEmpty = isEmpty
        self.limit = limit
    }

    init(_ queue: borrowing OutboundQueue) {
        pendingBytes = queue.pendingByteCount
        pendingFileDescriptors = queue.pendingFileDescriptorCount
        isEmpty = queue.isEmpty
        limit = queue.maxFileDescriptorsPerSendmsg
    }
}

extension FileDescriptorQueue {
    /// A queue owning `fds`.
    static func owning(_ fds: [Int32]) -> FileDescriptorQueue {
        var queue = FileDescriptorQueue()
        queue.append(takingRawValues: fds)
        return queue
    }
}
