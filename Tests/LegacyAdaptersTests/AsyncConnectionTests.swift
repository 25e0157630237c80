import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
@testable import LegacyAdapters

extension FileDescriptorSuites {
    @Suite struct AsyncConnectionTests {
        let mux = EndpointMux(identity: testIdentity, servedProtocols: [0x7A63])

        @Test(.timeLimit(.minutes(1)))
        func servesFramesProbesAndControlFromATask() async throws {
            try await expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let connection = try AsyncConnection(taking: OwnedFileDescriptor(taking: server), mux: mux)
                let probe = try ProbeRequest(nonce: Array(0..<32))
                try writeAll(
                    client,
                    try Frame(payloadProtocol: 0x7A63, payload: Array("ping".utf8), requestID: 5).encoded()
                        + probe.frame.encoded())
                // The control message's fd rides on its bytes.
                try sendRaw(
                    client, #"{"jsonrpc":"2.0","method":"count","id":1,"fds":1}"#, fds: [try makePipe(holding: "x")])
                let consumer = Task { () -> [String] in
                    var kinds: [String] = []
                    for await event in connection.events {
                        switch event {
                        case let .payload(frame):
                            kinds.append("payload")
                            try? connection.send(frame.response(payload: Array("pong".utf8)))
                        case let .control(received):
                            kinds.append("control:\(received.fileDescriptorCount)")
                            if case let .request(request) = received.message {
                                connection.send(
                                    OutgoingControlMessage(
                                        replyingTo: request, result: .number(JSONNumber(received.fileDescriptorCount))))
                            }
                        case .closed:
                            kinds.append("closed")
                        default:
                            kinds.append("other")
                        }
                    }
                    return kinds
                }
                // Read the three answers, then end the conversation.
                // (on a thread of its own: Task.sleep would make the runtime open a timer fd)
                let bytes = try await onDedicatedThread { () -> [UInt8] in
                    var bytes: [UInt8] = []
                    let deadline = ContinuousClock.now + .seconds(10)
                    while ContinuousClock.now < deadline, !String(decoding: bytes, as: UTF8.self).hasSuffix(#""id":1}"#)
                    {
                        var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
                        _ = poll(&pfd, 1, 50)
                        bytes += try readAvailable(client).bytes
                    }
                    return bytes
                }
                shutdown(client, Int32(SHUT_WR))
                #expect(await consumer.value == ["payload", "control:1", "closed"])
                let replies = try frames(in: bytes)
                #expect(replies.count == 2)
                #expect(replies.contains { String(decoding: $0.payload, as: UTF8.self) == "pong" && $0.requestID == 5 })
                #expect(replies.contains { (try? ProbeResponse(validating: $0, for: probe)) != nil })
                // The JSON answer follows the frames; a `{` byte may occur inside the binary
                // probe answer (its pid varies), so skip whole frames rather than search.
                var offset = 0
                while offset + 5 <= bytes.count, bytes[offset] == V1Framing.framingByte {
                    offset +=
                        5
                        + (Int(bytes[offset + 1]) | Int(bytes[offset + 2]) << 8
                            | Int(bytes[offset + 3]) << 16 | Int(bytes[offset + 4]) << 24)
                }
                let tail = bytes.suffix(from: min(offset, bytes.count))
                #expect(String(decoding: tail, as: UTF8.self) == #"{"jsonrpc":"2.0","result":1,"id":1}"#)
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func aSlowConsumerStopsTheReading() async throws {
            try await expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let connection = try AsyncConnection(taking: OwnedFileDescriptor(taking: server), mux: mux)
                let count = 200_000
                var all: [UInt8] = []
                for i in 0..<count {
                    all += try Frame(payloadProtocol: 0x7A63, payload: [1], requestID: UInt64(i)).encoded()
                }
                let bytes = all
                let writer = Task.detached {
                    try await onDedicatedThread {
                        try writeAll(client, bytes); shutdown(client, Int32(SHUT_WR))
                    }
                }
                // Nobody consumes: the connection reads a bounded amount, then stops.
                _ = try await onDedicatedThread {
                    let deadline = ContinuousClock.now + .seconds(10)
                    while connection.unconsumedEventCount <= AsyncConnection.maxUnconsumedEvents,
                        ContinuousClock.now < deadline
                    {
                        usleep(10_000)
                    }
                    usleep(300_000)  // time enough to read everything, were it not throttled
                }
                let pending = connection.unconsumedEventCount
                #expect(pending > 0 && pending < count, "\(pending) events unconsumed")
                // Consuming lets it read on; every frame arrives, in order.
                var next: UInt64 = 0
                for await event in connection.events {
                    if case let .payload(frame) = event {
                        #expect(frame.requestID == next)
                        next += 1
                    }
                }
                #expect(next == UInt64(count))
                try await writer.value
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func closeFromATaskSendsTheEpitaph() async throws {
            try await expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let connection = try AsyncConnection(taking: OwnedFileDescriptor(taking: server), mux: mux)
                connection.close(epitaph: Epitaph(status: EpitaphStatus(rawValue: 7), reason: "maintenance"))
                var ended: ConnectionEnd?
                for await event in connection.events { if case let .closed(end) = event { ended = end } }
                #expect(ended == .closedByDaemon)
                let (bytes, error) = try readToEOF(client)
                #expect(error == nil)
                #expect(
                    try frames(in: bytes).compactMap { Epitaph(v1Frame: $0) } == [
                        Epitaph(status: EpitaphStatus(rawValue: 7), reason: "maintenance")
                    ])
            }
        }

        /// The consumer stops iterating (`break`): the connection ends with an OK epitaph
        /// and the library closes the fd, which the daemon never touches again.
        @Test(.timeLimit(.minutes(1)))
        func aConsumerThatStopsIteratingEndsTheConnectionWithAnEpitaph() async throws {
            try await expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let connection = try AsyncConnection(taking: OwnedFileDescriptor(taking: server), mux: mux)
                try writeAll(client, try Frame(payloadProtocol: 0x7A63, payload: [1], requestID: 1).encoded())
                for await event in connection.events {
                    if case .payload = event { break }
                }
                let (bytes, error) = try await onDedicatedThread { try readToEOF(client) }
                #expect(error == nil)
                #expect(try frames(in: bytes).compactMap { Epitaph(v1Frame: $0) }.map(\.status) == [.ok])
            }
        }

        /// Cancelling the consuming task ends the connection the same way.
        @Test(.timeLimit(.minutes(1)))
        func cancellingTheConsumingTaskEndsTheConnection() async throws {
            try await expectNoFileDescriptorLeaks {
                let (server, client) = try makeSocketPair()
                defer { close(client) }
                let connection = try AsyncConnection(taking: OwnedFileDescriptor(taking: server), mux: mux)
                let consumer = Task {
                    var count = 0
                    for await _ in connection.events { count += 1 }
                    return count
                }
                // (a thread of its own: Task.sleep would make the runtime open a timer fd)
                _ = try await onDedicatedThread { usleep(20_000) }
                consumer.cancel()
                let (bytes, error) = try await onDedicatedThread { try readToEOF(client) }
                #expect(error == nil)
                #expect(try frames(in: bytes).compactMap { Epitaph(v1Frame: $0) }.map(\.status) == [.ok])
                _ = await consumer.value
            }
        }

        /// Connections are dropped and new sockets opened at once, again and again: as the
        /// library owns and closes each fd, a late epitaph can never reach a socket that
        /// reused the fd number.
        @Test(.timeLimit(.minutes(1)))
        func noWriteLandsOnAReusedFdNumber() async throws {
            try await expectNoFileDescriptorLeaks {
                var strangers: [(Int32, Int32)] = []
                defer { for (a, b) in strangers { close(a); close(b) } }
                for _ in 0..<100 {
                    let (server, client) = try makeSocketPair()
                    do {
                        let connection = try AsyncConnection(taking: OwnedFileDescriptor(taking: server), mux: mux)
                        connection.close()
                    }
                    close(client)
                    // Whatever fd numbers are free now get reused by unrelated sockets.
                    strangers.append(try makeSocketPair())
                }
                _ = try await onDedicatedThread { usleep(300_000) }
                for (a, b) in strangers {
                    for fd in [a, b] {
                        let leaked = try readAvailable(fd).bytes
                        #expect(leaked.isEmpty, "an unrelated socket received \(leaked.count) bytes")
                    }
                }
            }
        }
    }
}
