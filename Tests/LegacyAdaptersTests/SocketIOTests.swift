@_spi(Internals) import EndpointMux
import Foundation
import Testing
@testable import LegacyAdapters

extension FileDescriptorSuites {
    @Suite("SocketIO")
    struct SocketIOTests {
        /// Sends `bytes` with `fds` in one `sendmsg` (blocking socket) and closes `fds`.
        private func sendOnce(_ fd: Int32, _ text: String, closing fds: [Int32] = []) throws {
            defer { fds.forEach { close($0) } }
            let bytes = Array(text.utf8)
            let written = try bytes.withUnsafeBytes { try SocketIO.send(to: fd, bytes: $0, fileDescriptors: fds) }
            #expect(written == bytes.count)
        }

        @Test func pipeMemfdAndFileArriveWithContentAndCloseOnExec() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                let sent = [
                    try makePipe(holding: "from a pipe"),
                    try makeMemfd(holding: "from a memfd"),
                    try makeTemporaryFile(holding: "from a file"),
                ]
                try sendOnce(a, "{}", closing: sent)

                var queue = FileDescriptorQueue()
                var buffer = [UInt8](repeating: 0, count: 64)
                let outcome = try buffer.withUnsafeMutableBytes {
                    try SocketIO.receive(from: b, into: $0, fileDescriptors: &queue)
                }
                #expect(outcome == .received(byteCount: 2))
                #expect(buffer[0..<2] == [0x7B, 0x7D])
                let raw = queue.rawValues
                #expect(raw.count == 3)
                #expect(raw.allSatisfy { fcntl($0, F_GETFD) & FD_CLOEXEC != 0 })
                #expect(raw.map(contents(of:)) == ["from a pipe", "from a memfd", "from a file"])
            }
        }

        @Test func descriptorsBeforeWithAndAfterTheBytesQueueInOrder() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                let fds = try makePipes(4)
                try sendOnce(a, " ", closing: [fds[0]])  // before the message
                try sendOnce(a, "{\"a\":", closing: [fds[1]])  // with its first chunk
                try sendOnce(a, "1}", closing: [fds[2]])  // with a later chunk
                try sendOnce(a, "\n", closing: [fds[3]])  // after it
                let log = try receiveLog(from: b, byteCount: 9, fdCount: 4, timeout: .seconds(5))
                #expect(String(decoding: log.bytes, as: UTF8.self) == " {\"a\":1}\n")
                #expect(
                    log.calls == [
                        .init(bytes: 1, fds: 1), .init(bytes: 5, fds: 1), .init(bytes: 2, fds: 1),
                        .init(bytes: 1, fds: 1),
                    ])
                #expect(log.contents == pipeContents(4))
            }
        }

        /// Linux: a `recvmsg` that has read plain bytes goes on into an skb that carries
        /// descriptors, then stops after it; the next call starts after it.
        @Test func aRecvmsgEndsAfterTheBytesThatCarriedDescriptors() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                try sendOnce(a, "abc")
                try sendOnce(a, "def")
                try sendOnce(a, "g", closing: try makePipes(1))
                try sendOnce(a, "hi")
                let log = try receiveLog(from: b, byteCount: 9, fdCount: 1, timeout: .seconds(5))
                #expect(log.calls == [.init(bytes: 7, fds: 1), .init(bytes: 2, fds: 0)])
                #expect(String(decoding: log.bytes, as: UTF8.self) == "abcdefghi")
            }
        }

        @Test func controlTruncationClosesWhatArrivedAndThrows() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                try sendOnce(a, "x", closing: try makePipes(5))
                var queue = queue(owning: try makePipes(1))  // an earlier descriptor stays queued
                var buffer = [UInt8](repeating: 0, count: 16)
                #expect(throws: EndpointMuxError.controlTruncated(received: 2)) {
                    _ = try buffer.withUnsafeMutableBytes {
                        try SocketIO.receive(from: b, into: $0, fileDescriptors: &queue, maxFileDescriptors: 2)
                    }
                }
                let left = queue.rawValues.map(contents(of:))
                #expect(left == ["fd-0"])
            }
        }

        @Test func noRoomForDescriptorsIsTruncation() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                try sendOnce(a, "x", closing: try makePipes(1))
                var receiver = SocketReceiver(maxFileDescriptors: 0)
                var queue = FileDescriptorQueue()
                var buffer = [UInt8](repeating: 0, count: 16)
                #expect(throws: EndpointMuxError.controlTruncated(received: 0)) {
                    _ = try buffer.withUnsafeMutableBytes {
                        try receiver.receive(from: b, into: $0, fileDescriptors: &queue)
                    }
                }
                try sendOnce(a, "y", closing: try makePipes(1))
                #expect(throws: EndpointMuxError.controlTruncated(received: 0)) {
                    _ = try buffer.withUnsafeMutableBytes {
                        try SocketIO.receive(from: b, into: $0, fileDescriptors: &queue, maxFileDescriptors: 0)
                    }
                }
                let count = queue.count
                #expect(count == 0)
            }
        }

        @Test func endOfFileAfterTheLastBytes() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(b) }
                try sendOnce(a, "bye", closing: try makePipes(1))
                close(a)
                var queue = FileDescriptorQueue()
                var buffer = [UInt8](repeating: 0, count: 16)
                let first = try buffer.withUnsafeMutableBytes {
                    try SocketIO.receive(from: b, into: $0, fileDescriptors: &queue)
                }
                let second = try buffer.withUnsafeMutableBytes {
                    try SocketIO.receive(from: b, into: $0, fileDescriptors: &queue)
                }
                #expect(first == .received(byteCount: 3))
                #expect(second == .endOfFile)
                let count = queue.count
                #expect(count == 1)
            }
        }

        @Test func nonBlockingSocketWithNothingToReadWouldBlock() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                try SocketIO.setNonBlocking(b, true)
                #expect(fcntl(b, F_GETFL) & O_NONBLOCK != 0)
                var queue = FileDescriptorQueue()
                var buffer = [UInt8](repeating: 0, count: 16)
                let outcome = try buffer.withUnsafeMutableBytes {
                    try SocketIO.receive(from: b, into: $0, fileDescriptors: &queue)
                }
                #expect(outcome == .wouldBlock)
                try SocketIO.setNonBlocking(b, false)
                #expect(fcntl(b, F_GETFL) & O_NONBLOCK == 0)
            }
        }

        @Test func invalidArguments() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                var queue = FileDescriptorQueue()
                #expect(throws: EndpointMuxError.invalidArgument("receive buffer is empty")) {
                    _ = try SocketIO.receive(
                        from: b, into: UnsafeMutableRawBufferPointer(start: nil, count: 0), fileDescriptors: &queue)
                }
                #expect(throws: EndpointMuxError.self) {
                    _ = try SocketIO.send(
                        to: a, bytes: UnsafeRawBufferPointer(start: nil, count: 0), fileDescriptors: [0])
                }
                let nothing = try SocketIO.send(
                    to: a, bytes: UnsafeRawBufferPointer(start: nil, count: 0), fileDescriptors: [])
                #expect(nothing == 0)
            }
        }

        @Test func sendToAClosedPeerIsEPIPENotSIGPIPE() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a) }
                close(b)
                let fds = try makePipes(2)
                defer { fds.forEach { close($0) } }
                let bytes: [UInt8] = Array("hello".utf8)
                #expect(throws: EndpointMuxError.system(operation: "sendmsg", errno: EPIPE)) {
                    _ = try bytes.withUnsafeBytes { try SocketIO.send(to: a, bytes: $0, fileDescriptors: []) }
                }
                #expect(throws: EndpointMuxError.system(operation: "sendmsg", errno: EPIPE)) {
                    _ = try bytes.withUnsafeBytes { try SocketIO.send(to: a, bytes: $0, fileDescriptors: fds) }
                }
            }
        }

        @Test func kernelLimitIs253DescriptorsPerSendmsg() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                let one = try makePipe(holding: "same")
                defer { close(one) }
                let bytes: [UInt8] = [0x20]
                #expect(throws: EndpointMuxError.fileDescriptorBatchRejected(count: 254, errno: EINVAL)) {
                    _ = try bytes.withUnsafeBytes {
                        try SocketIO.send(to: a, bytes: $0, fileDescriptors: repeatElement(one, count: 254))
                    }
                }
                let written = try bytes.withUnsafeBytes {
                    try SocketIO.send(to: a, bytes: $0, fileDescriptors: repeatElement(one, count: 253))
                }
                #expect(written == 1)
                let log = try receiveLog(from: b, byteCount: 1, fdCount: 253)
                #expect(log.fdCountsPerCall == [253])
                #expect(log.contents.first == "same")
            }
        }

        @Test func waitingForReadability() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                let clock = ContinuousClock()
                let start = clock.now
                #expect(try SocketIO.waitUntilReadable(b, timeout: .milliseconds(30)) == false)
                #expect(clock.now - start >= .milliseconds(30))
                #expect(try SocketIO.waitUntilWritable(a, timeout: .zero))
                try writeAll(a, [1])
                #expect(try SocketIO.waitUntilReadable(b, timeout: nil))
                close(a)
                #expect(try SocketIO.waitUntilReadable(b, timeout: .seconds(5)))  // data, then hang-up
            }
        }

        @Test func pollOnAClosedDescriptorIsEBADF() throws {
            let unused: Int32 = 19_999
            try #require(!isOpen(unused))
            #expect(throws: EndpointMuxError.system(operation: "poll", errno: EBADF)) {
                _ = try SocketIO.waitUntilReadable(unused, timeout: .seconds(1))
            }
        }

        @Test func peerProcessIDIsOurs() throws {
            try expectNoFileDescriptorLeaks {
                let (a, b) = try makeSocketPair()
                defer { close(a); close(b) }
                #expect(try SocketIO.peerProcessID(a) == getpid())
                let pipeEnd = try makePipe(holding: "")
                defer { close(pipeEnd) }
                #expect(throws: EndpointMuxError.system(operation: "getsockopt", errno: ENOTSOCK)) {
                    _ = try SocketIO.peerProcessID(pipeEnd)
                }
            }
        }

        @Test func pollTimeoutsRoundUp() {
            let clock = ContinuousClock()
            let now = clock.now
            #expect(SocketIO.pollMilliseconds(until: now, now: now) == 0)
            #expect(SocketIO.pollMilliseconds(until: now - .seconds(1), now: now) == 0)
            #expect(SocketIO.pollMilliseconds(until: now + .microseconds(1), now: now) == 1)
            #expect(SocketIO.pollMilliseconds(until: now + .milliseconds(7), now: now) == 7)
            #expect(SocketIO.pollMilliseconds(until: now + .milliseconds(1500) + .nanoseconds(1), now: now) == 1501)
            #expect(SocketIO.pollMilliseconds(until: now + .seconds(Int64.max / 2), now: now) == Int32.max)
        }
    }
}
