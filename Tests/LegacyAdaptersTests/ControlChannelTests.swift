@_spi(Internals) import EndpointMux
import Foundation
import Testing
@testable import LegacyAdapters

// Acceptance tests of the JSON-FD (jsonrpc-fdpass) control channel: a server-side
// ConnectionDriver over real socketpairs with real fds, driven by raw client writes
// (SocketIO.send / OutboundQueue) or by a ControlClient. See
// /work/shared/spec/jsonrpc-fdpass.md §5, §10 and §11. Every test checks /proc/self/fd.

/// What a client saw from the server after it finished sending, and the server's log.
struct ControlExchange: Sendable {
    var replies: ReceiveLog
    var log: ServerLog
    var text: String { String(decoding: replies.bytes, as: UTF8.self) }
}

/// Starts a ``DriverHarness`` on its own thread, runs `client` with the client's fd on a
/// dedicated thread, half-closes (when `halfClose`), reads everything up to the server's
/// end of file, and finishes the server.
func controlExchange(
    limits: MuxLimits = MuxLimits(), halfClose: Bool = true,
    _ client: @escaping @Sendable (Int32) throws -> Void
) async throws -> ControlExchange {
    try await onDedicatedThread {
        let server = try DriverHarness(limits: limits)
        server.start()
        do {
            try client(server.clientFD)
            if halfClose { server.shutdownClientWrites() }
            let replies = try receiveLog(from: server.clientFD, untilEndOfFile: true, timeout: .seconds(20))
            return ControlExchange(replies: replies, log: server.finish())
        } catch {
            server.finish(timeout: .seconds(2))
            throw error
        }
    }
}

/// Expects `actual == expected`; for long texts a mismatch is reported by its first
/// differing byte and lengths instead of both texts in full.
func expectText(_ actual: String, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual != expected else { return }
    let got = Array(actual.utf8), want = Array(expected.utf8)
    if got.count + want.count < 4096 {
        #expect(actual == expected, sourceLocation: sourceLocation)
        return
    }
    let first = (0..<min(got.count, want.count)).first { got[$0] != want[$0] } ?? min(got.count, want.count)
    func around(_ bytes: [UInt8]) -> String {
        String(decoding: bytes[max(0, first - 40)..<min(bytes.count, first + 40)], as: UTF8.self)
    }
    Issue.record(
        "texts differ at byte \(first): \(got.count) bytes, \(want.count) expected; got …\(around(got))… expected …\(around(want))…",
        sourceLocation: sourceLocation)
}

/// The requests the server saw, as `method` → `params` text (for compact checks).
private func paramsTexts(_ log: ServerLog) -> [String] {
    log.seen.map { seen in
        switch seen.message {
        case let .request(request):
            return request.params.map { String(decoding: $0.serialized(), as: UTF8.self) } ?? "-"
        case let .notification(notification):
            return notification.params.map { String(decoding: $0.serialized(), as: UTF8.self) } ?? "-"
        case .response: return "response"
        }
    }
}

extension FileDescriptorSuites {
    /// The cases of the Rust crate's tests/integration_tests.rs and tests/jsonrpsee_interop.rs
    /// (spec §10), through the driver and real fds.
    @Suite("ControlChannel: reference suites", .timeLimit(.minutes(2)))
    struct ControlChannelReferenceTests {
        // test_basic_message_serialization, test_fds_field_in_serialization,
        // test_our_format_is_valid_jsonrpc, test_client_server_communication.
        @Test func basicMessageSerializesAndIsAnswered() async throws {
            let echo = ControlMessage.request(ControlRequest(method: "echo", params: ["greeting": "hello"], id: 1))
            #expect(
                String(decoding: echo.encoded(), as: UTF8.self)
                    == Wire.request("echo", params: #"{"greeting":"hello"}"#, id: "1"))
            #expect(
                String(decoding: echo.encoded(fileDescriptorCount: 1), as: UTF8.self)
                    == Wire.request("echo", params: #"{"greeting":"hello"}"#, id: "1", fds: 1))
            let note = ControlMessage.notification(ControlNotification(method: "note", params: [1, 2]))
            #expect(
                String(decoding: note.encoded(), as: UTF8.self) == #"{"jsonrpc":"2.0","method":"note","params":[1,2]}"#)

            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in try sendRaw(fd, echo.encoded()) }
                #expect(exchange.text == Wire.result(#"{"greeting":"hello"}"#, id: "1"))
                #expect(exchange.log.seen.map(\.message) == [echo])
                #expect(exchange.log.ends == [.peerClosed])
                #expect(exchange.replies.calls.allSatisfy { $0.fds == 0 })
                #expect(!exchange.log.timedOut)
            }
        }

        // test_file_descriptor_passing: one temp-file fd whose content the server reads.
        @Test func fileDescriptorPassingDeliversTheFile() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(
                        fd, Wire.request("readFds", id: "1", fds: 1),
                        fds: [try makeTemporaryFile(holding: "hello from a temp file")])
                }
                #expect(exchange.text == Wire.result(Wire.readFds(["hello from a temp file"]), id: "1"))
                #expect(exchange.log.seen.map(\.kinds) == [["file"]])
                #expect(exchange.log.ends == [.peerClosed])
            }
        }

        // test_multiple_messages_with_fds_sequential.
        @Test func sequentialMessagesEachWithTheirOwnFd() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    for (index, word) in ["first", "second", "third"].enumerated() {
                        try sendRaw(
                            fd, Wire.request("readFds", id: "\(index + 1)", fds: 1),
                            fds: [try makeTemporaryFile(holding: word)])
                    }
                }
                #expect(
                    exchange.text == Wire.result(Wire.readFds(["first"]), id: "1")
                        + Wire.result(Wire.readFds(["second"]), id: "2") + Wire.result(Wire.readFds(["third"]), id: "3")
                )
                #expect(exchange.log.seen.map(\.texts) == [["first"], ["second"], ["third"]])
            }
        }

        // test_multiple_fds_single_message: three kinds of fd on one message, order kept.
        @Test func multipleFdsOnOneMessageKeepTheirOrder() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    let fds = [
                        try makePipe(holding: "a pipe"), try makeMemfd(holding: "a memfd"),
                        try makeTemporaryFile(holding: "a file"),
                    ]
                    try sendRaw(fd, Wire.request("readFds", id: "1", fds: 3), fds: fds)
                }
                #expect(exchange.text == Wire.result(Wire.readFds(["a pipe", "a memfd", "a file"]), id: "1"))
                #expect(exchange.log.seen.map(\.kinds) == [["pipe", "file", "file"]])
            }
        }

        // test_mixed_messages_with_and_without_fds (and Go's TestMixedMessagesWithAndWithoutFDs).
        @Test func mixedMessagesWithAndWithoutFds() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, Wire.request("echo", params: #"{"n":1}"#, id: "1"))
                    try sendRaw(
                        fd, Wire.request("readFds", id: "2", fds: 1), fds: [try makePipe(holding: "with an fd")])
                    try sendRaw(fd, Wire.request("echo", params: #"{"n":3}"#, id: "3"))
                    try sendRaw(fd, Wire.notification("note", params: #"{"n":4}"#))
                    try sendRaw(fd, Wire.request("stats", id: "5"))
                }
                #expect(
                    exchange.text == Wire.result(#"{"n":1}"#, id: "1")
                        + Wire.result(Wire.readFds(["with an fd"]), id: "2")
                        + Wire.result(#"{"n":3}"#, id: "3")
                        + Wire.result(Wire.stats(requests: 4, notifications: 1, notificationFds: 0), id: "5"))
                #expect(exchange.log.methods == ["echo", "readFds", "echo", "note", "stats"])
                #expect(exchange.log.fdCounts == [0, 1, 0, 0, 0])
            }
        }

        // test_large_number_of_fds: 10 fds on one message.
        @Test func tenFdsOnOneMessage() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, Wire.request("readFds", id: "1", fds: 10), fds: try makePipes(10))
                }
                #expect(exchange.text == Wire.result(Wire.readFds(pipeContents(10)), id: "1"))
                #expect(exchange.log.seen.first?.kinds == Array(repeating: "pipe", count: 10))
            }
        }

        // test_zero_byte_files_with_fds.
        @Test func zeroByteFiles() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    let fds = [
                        try makeTemporaryFile(holding: ""), try makeTemporaryFile(holding: ""),
                        try makeMemfd(holding: ""),
                    ]
                    try sendRaw(fd, Wire.request("sizes", id: "1", fds: 3), fds: fds)
                }
                #expect(exchange.text == Wire.result(#"{"count":3,"sizes":[0,0,0]}"#, id: "1"))
                #expect(exchange.log.seen.first?.kinds == ["file", "file", "file"])
            }
        }

        // test_fd_placeholder_index_ordering, test_fds_with_positional_semantics.
        @Test func fdsArePositional() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    let words = ["FIRST", "SECOND", "THIRD"]
                    try sendRaw(
                        fd, Wire.request("readFds", params: #"{"order":"as sent"}"#, id: "1", fds: 3),
                        fds: try words.map { try makeMemfd(holding: $0) })
                    try sendRaw(
                        fd, Wire.request("readFds", params: #"{"order":"reversed"}"#, id: "2", fds: 3),
                        fds: try words.reversed().map { try makeMemfd(holding: $0) })
                }
                #expect(
                    exchange.text == Wire.result(Wire.readFds(["FIRST", "SECOND", "THIRD"]), id: "1")
                        + Wire.result(Wire.readFds(["THIRD", "SECOND", "FIRST"]), id: "2"))
            }
        }

        // test_rapid_message_bursts: 20 requests without waiting, every third with an fd.
        @Test func rapidBursts() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    for index in 0..<20 {
                        if index % 3 == 0 {
                            try sendRaw(
                                fd, Wire.request("readFds", id: "\(index)", fds: 1),
                                fds: [try makePipe(holding: "burst-\(index)")])
                        } else {
                            try sendRaw(fd, Wire.request("echo", params: #"{"i":\#(index)}"#, id: "\(index)"))
                        }
                    }
                }
                let expected = (0..<20).map { index in
                    index % 3 == 0
                        ? Wire.result(Wire.readFds(["burst-\(index)"]), id: "\(index)")
                        : Wire.result(#"{"i":\#(index)}"#, id: "\(index)")
                }.joined()
                #expect(exchange.text == expected)
                #expect(exchange.log.fdCounts == (0..<20).map { $0 % 3 == 0 ? 1 : 0 })
            }
        }

        // test_interleaved_requests_responses_notifications.
        @Test func interleavedRequestsResponsesAndNotifications() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, Wire.request("readFds", id: "1", fds: 1), fds: [try makePipe(holding: "r1")])
                    try sendRaw(fd, Wire.notification("note", params: #"{"k":1}"#, fds: 2), fds: try makePipes(2))
                    try sendRaw(fd, Wire.result(#""a response from the client""#, id: "99"))
                    try sendRaw(fd, Wire.request("echo", params: "[true]", id: "2"))
                    try sendRaw(fd, Wire.notification("note"))
                    try sendRaw(fd, Wire.request("readFds", id: "3", fds: 1), fds: [try makeMemfd(holding: "r3")])
                    try sendRaw(fd, Wire.request("stats", id: "4"))
                }
                #expect(
                    exchange.text == Wire.result(Wire.readFds(["r1"]), id: "1") + Wire.result("[true]", id: "2")
                        + Wire.result(Wire.readFds(["r3"]), id: "3")
                        + Wire.result(Wire.stats(requests: 4, notifications: 2, notificationFds: 2), id: "4"))
                #expect(exchange.log.methods == ["readFds", "note", nil, "echo", "note", "readFds", "stats"])
                #expect(
                    exchange.log.seen[2].message
                        == .response(ControlResponse(id: 99, result: "a response from the client")))
                #expect(exchange.log.seen[1].texts == ["fd-0", "fd-1"])
            }
        }

        // test_invalid_json_framing_error: a framing error gets the JSON epitaph, then EOF.
        @Test func invalidJSONIsAFramingErrorWithAJSONEpitaph() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange(halfClose: false) { fd in
                    try sendRaw(fd, "{ invalid json content \n", fds: [try makePipe(holding: "dropped")])
                }
                let reason = "framing error: unexpected byte 0x69 at offset 2"
                #expect(exchange.text == Wire.epitaph(status: -45, reason: reason))
                #expect(exchange.replies.sawEndOfFile)
                #expect(exchange.log.seen.isEmpty)
                #expect(exchange.log.ends == [.failed(Epitaph(status: .invalidFrame, reason: reason))])
            }
        }

        // test_mismatched_fd_count_error, test_fds_field_mismatch_too_few_fds,
        // test_receiver_errors_on_close_while_pending: EOF while a message waits.
        @Test(arguments: [(2, 0), (3, 0), (3, 1)])
        func endOfInputWhileWaitingIsAMismatchedCount(declared: Int, attached: Int) async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, Wire.request("readFds", id: "1", fds: declared), fds: try makePipes(attached))
                }
                let reason = "mismatched count: message declared \(declared) fds, \(attached) arrived"
                #expect(
                    exchange.text == Wire.fileDescriptorError(id: "1", reason: reason)
                        + Wire.epitaph(status: -20, reason: reason))
                #expect(exchange.replies.sawEndOfFile)
                #expect(exchange.log.seen.isEmpty)
                #expect(exchange.log.ends == [.failed(Epitaph(status: .badState, reason: reason))])
            }
        }

        // test_fds_field_zero_with_no_fds (and the Kani check_skip_zero/none): `fds` is
        // omitted at 0, and 0 / absent / null / -0 all mean no fds.
        @Test func fdsZeroAbsentNullAndMinusZeroMeanNoFds() async throws {
            let zero = ControlMessage.request(ControlRequest(method: "readFds", id: 1)).encoded(fileDescriptorCount: 0)
            #expect(String(decoding: zero, as: UTF8.self) == Wire.request("readFds", id: "1"))
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, #"{"jsonrpc":"2.0","method":"readFds","id":1,"fds":0}"#)
                    try sendRaw(fd, zero)
                    try sendRaw(fd, #"{"jsonrpc":"2.0","method":"readFds","id":3,"fds":null}"#)
                    try sendRaw(fd, #"{"jsonrpc":"2.0","method":"readFds","id":4,"fds":-0}"#)
                    try sendQueued(fd, [(.request(ControlRequest(method: "readFds", id: 5)), [])])
                }
                let none = Wire.readFds([])
                #expect(exchange.text == ["1", "1", "3", "4", "5"].map { Wire.result(none, id: $0) }.joined())
                #expect(exchange.log.fdCounts == [0, 0, 0, 0, 0])
            }
        }

        // test_connection_drop_with_pending_fds: the client drops the connection while the
        // server holds a message waiting for fds (and one queued fd): no crash, no leak.
        @Test func connectionDropWithPendingFds() async throws {
            try await expectNoFileDescriptorLeaks {
                let (waiting, log) = try await onDedicatedThread { () throws -> (ServerLog, ServerLog) in
                    let server = try DriverHarness()
                    try sendRaw(
                        server.clientFD, Wire.request("readFds", id: "1", fds: 2),
                        fds: [try makePipe(holding: "pending")])
                    server.run(until: { _ in false }, timeout: .milliseconds(100))  // parsed, waiting for its second fd
                    let waiting = server.snapshot()
                    shutdown(server.clientFD, Int32(SHUT_RDWR))
                    return (waiting, server.finish())
                }
                #expect(waiting.seen.isEmpty && waiting.ends.isEmpty)
                #expect(log.seen.isEmpty)
                // The -32050 answer and the epitaph had nowhere to go: one end, EPIPE, no SIGPIPE.
                #expect(log.ends == [.transportError(.system(operation: "sendmsg", errno: EPIPE))])
            }
        }

        // ... and dropping right after a complete message with an fd: the message still
        // arrives with its fd, the reply to the vanished peer fails quietly.
        @Test func connectionDropAfterACompleteMessage() async throws {
            try await expectNoFileDescriptorLeaks {
                let log = try await onDedicatedThread { () throws -> ServerLog in
                    let server = try DriverHarness()
                    try sendRaw(
                        server.clientFD, Wire.request("readFds", id: "1", fds: 1),
                        fds: [try makePipe(holding: "last words")])
                    shutdown(server.clientFD, Int32(SHUT_RDWR))
                    server.run(until: { $0.ends.count == 1 })
                    return server.finish()
                }
                #expect(log.seen.map(\.texts) == [["last words"]])
                // the reply had nowhere to go
                #expect(log.ends == [.transportError(.system(operation: "sendmsg", errno: EPIPE))])
            }
        }

        // test_large_message_with_fds: 50 KB of params and an fd to a 1 MiB file.
        @Test func largeMessageWithAnFdToAOneMiBFile() async throws {
            try await expectNoFileDescriptorLeaks {
                let pattern = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 12)) }
                let padding = String(repeating: "p", count: 50 * 1024)
                let exchange = try await controlExchange { fd in
                    let file = try makeTemporaryFile(holding: "")
                    try writeAll(file, pattern)
                    try sendQueued(
                        fd,
                        [
                            (
                                .request(ControlRequest(method: "sizes", params: ["padding": .string(padding)], id: 1)),
                                [file]
                            )
                        ])
                }
                #expect(exchange.text == Wire.result(#"{"count":1,"sizes":[1048576]}"#, id: "1"))
                let sameFile = exchange.log.seen.first?.contents == [pattern]
                #expect(sameFile, "the server did not read the 1 MiB file as written")
                let sameMessage =
                    exchange.log.seen.first?.message
                    == .request(ControlRequest(method: "sizes", params: ["padding": .string(padding)], id: 1))
                #expect(sameMessage, "the 50 KB params did not arrive intact")
            }
        }

        // test_invalid_fds_field_type: "fds":"not_a_number" is fatal (Rust's actual behaviour).
        @Test func invalidFdsFieldTypeIsFatal() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange(halfClose: false) { fd in
                    try sendRaw(
                        fd, #"{"jsonrpc":"2.0","method":"echo","id":1,"fds":"not_a_number"}"#, fds: try makePipes(1))
                }
                let reason = #""fds" must be a non-negative integer, found "not_a_number""#
                #expect(exchange.text == Wire.epitaph(status: -10, reason: reason))
                #expect(exchange.log.ends == [.failed(Epitaph(status: .invalidArguments, reason: reason))])
            }
        }

        // test_pretty_printed_json: three pretty-printed messages, one write each.
        @Test func prettyPrintedMessages() async throws {
            try await expectNoFileDescriptorLeaks {
                let pretty = (1...3).map { id in
                    "{\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"echo\",\n  \"params\": {\n    \"id\": \(id),\n    \"list\": [\n      1,\n      2\n    ]\n  },\n  \"id\": \(id)\n}\n"
                }
                let exchange = try await controlExchange { fd in
                    for text in pretty { try sendRaw(fd, text) }
                }
                #expect(
                    exchange.text == (1...3).map { Wire.result(#"{"id":\#($0),"list":[1,2]}"#, id: "\($0)") }.joined())
            }
        }

        // test_concatenated_compact_json: three objects back to back in one write.
        @Test func concatenatedCompactMessages() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, (1...3).map { Wire.request("echo", params: "\($0)", id: "\($0)") }.joined())
                }
                #expect(exchange.text == (1...3).map { Wire.result("\($0)", id: "\($0)") }.joined())
            }
        }

        // test_mixed_pretty_and_compact_json, with every JSON whitespace between messages.
        @Test func mixedPrettyAndCompactMessages() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(
                        fd,
                        "{\n\t\"jsonrpc\" : \"2.0\" ,\r\n\t\"method\" : \"echo\" ,\n\t\"params\" : [ 1 , { } ] ,\n\t\"id\" : 1\n}"
                    )
                    try sendRaw(fd, Wire.request("echo", params: "2", id: "2") + " \t\r\n")
                    try sendRaw(
                        fd, "\r\n{ \"jsonrpc\":\"2.0\",\"method\":\"readFds\",\n\"id\":3,\n\"fds\":1 }",
                        fds: [try makePipe(holding: "pretty fd")])
                    try sendRaw(fd, Wire.request("echo", params: "4", id: "4"))
                }
                #expect(
                    exchange.text == Wire.result("[1,{}]", id: "1") + Wire.result("2", id: "2")
                        + Wire.result(Wire.readFds(["pretty fd"]), id: "3") + Wire.result("4", id: "4"))
            }
        }

        // test_large_message_exceeds_kernel_buffer: a 1 MiB message, and its 1 MiB echo,
        // through a socket that holds about 200 KB.
        @Test func oneMiBMessageOverTheKernelBuffer() async throws {
            try await expectNoFileDescriptorLeaks {
                let big = String(repeating: "0123456789abcdef", count: 1 << 16)
                let (text, log) = try await onDedicatedThread { () throws -> (String, ServerLog) in
                    let server = try DriverHarness()
                    server.start()
                    defer { server.finish(timeout: .seconds(2)) }
                    try sendQueued(
                        server.clientFD, [(.request(ControlRequest(method: "echo", params: .string(big), id: 1)), [])])
                    let expected = Wire.result("\"\(big)\"", id: "1")
                    let replies = try receiveLog(
                        from: server.clientFD, byteCount: expected.utf8.count, timeout: .seconds(30))
                    return (String(decoding: replies.bytes, as: UTF8.self), server.finish())
                }
                #expect(text.utf8.count == (1 << 20) + 36)
                expectText(text, Wire.result("\"\(big)\"", id: "1"))
                #expect(log.ends == [.peerClosed])
            }
        }

        // test_large_message_with_fd: 1 MiB message plus an fd (it rides on the first chunk).
        @Test func oneMiBMessageWithAnFd() async throws {
            try await expectNoFileDescriptorLeaks {
                let big = String(repeating: "x", count: 1 << 20)
                let exchange = try await controlExchange { fd in
                    try sendQueued(
                        fd,
                        [
                            (
                                .request(ControlRequest(method: "readFds", params: .string(big), id: 1)),
                                [try makePipe(holding: "big fd")]
                            )
                        ])
                }
                #expect(exchange.text == Wire.result(Wire.readFds(["big fd"]), id: "1"))
                let sameMessage =
                    exchange.log.seen.first?.message
                    == .request(ControlRequest(method: "readFds", params: .string(big), id: 1))
                #expect(sameMessage, "the 1 MiB params did not arrive intact")
            }
        }

        // test_fd_batching_one_per_message / _two_per_message / _many_fds_small_batches and
        // Go's TestFDBatching{SmallBatches,ManyFDs,NoBatching,SingleFD,ExactBoundary,
        // FollowedByNonFDMessage}: each batched message is followed by a message without fds.
        @Test(arguments: [
            (5, 1), (7, 2), (20, 3), (10, 1), (10, 2), (10, 3), (50, 7), (100, 10), (5, 500), (1, 1), (5, 5), (6, 5),
        ])
        func batchedFdsFollowedByAMessageWithout(fdCount: Int, batch: Int) async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendQueued(
                        fd,
                        [
                            (.request(ControlRequest(method: "readFds", id: 1)), try makePipes(fdCount)),
                            (.request(ControlRequest(method: "echo", params: "after", id: 2)), []),
                        ], maxPerSendmsg: batch)
                }
                expectText(
                    exchange.text,
                    Wire.result(Wire.readFds(pipeContents(fdCount)), id: "1") + Wire.result(#""after""#, id: "2"))
                #expect(exchange.log.fdCounts == [fdCount, 0])
            }
        }

        // test_fd_batching_interleaved_with_no_fd_messages: batch size 1, 3/0/2/0/4 fds.
        @Test func batchingInterleavedWithMessagesWithoutFds() async throws {
            try await expectNoFileDescriptorLeaks {
                let counts = [3, 0, 2, 0, 4]
                let exchange = try await controlExchange { fd in
                    var messages: [(ControlMessage, [Int32])] = []
                    for (index, count) in counts.enumerated() {
                        let fds = try (0..<count).map { try makePipe(holding: "m\(index)-\($0)") }
                        messages.append(
                            (.request(ControlRequest(method: "readFds", id: .number(JSONNumber(index)))), fds))
                    }
                    try sendQueued(fd, messages, maxPerSendmsg: 1)
                }
                let expected = counts.enumerated().map { index, count in
                    Wire.result(Wire.readFds((0..<count).map { "m\(index)-\($0)" }), id: "\(index)")
                }.joined()
                #expect(exchange.text == expected)
                #expect(exchange.log.fdCounts == counts)
            }
        }

        // test_receiver_errors_on_next_message_before_fds: the next message starts while
        // `fds:2` waits → Mismatched Count, at once (the client has not closed).
        @Test func nextMessageBeforeTheFdsIsAMismatchedCount() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange(halfClose: false) { fd in
                    try sendRaw(fd, Wire.request("readFds", id: "1", fds: 2) + Wire.request("echo", id: "2"))
                }
                let reason = "mismatched count: message declared 2 fds, 0 arrived"
                #expect(
                    exchange.text == Wire.fileDescriptorError(id: "1", reason: reason)
                        + Wire.epitaph(status: -20, reason: reason))
                #expect(exchange.replies.sawEndOfFile)
                #expect(exchange.log.ends == [.failed(Epitaph(status: .badState, reason: reason))])
            }
        }

        // jsonrpsee_interop: test_wire_format_round_trip, test_parse_jsonrpsee_format_request.
        @Test func wireFormatRoundTrip() async throws {
            try await expectNoFileDescriptorLeaks {
                let params =
                    #"{"s":"text with \"quotes\", \\ and \n","i":42,"f":-1.5e3,"b":false,"n":null,"a":[1,"two",[3]],"o":{"k":"v"},"big":12345678901234567890,"u":"é€😀"}"#
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, Wire.request("echo", params: params, id: "7"))
                }
                #expect(exchange.text == Wire.result(params, id: "7"))
            }
        }

        // jsonrpsee_interop: test_notification_no_response, test_sequential_requests,
        // test_error_response_format, test_string_id_handling, test_null_params, test_array_params.
        @Test func notificationsUnknownMethodsIdsAndParams() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, Wire.notification("note", params: #"{"silent":true}"#))
                    for id in 10...12 { try sendRaw(fd, Wire.request("echo", params: "[\(id)]", id: "\(id)")) }
                    try sendRaw(
                        fd, Wire.request("no.such.method", params: "{}", id: "3", fds: 2), fds: try makePipes(2))
                    try sendRaw(fd, Wire.request("echo", params: #""string id""#, id: #""abc-1""#))
                    try sendRaw(fd, Wire.request("echo", params: #""null id""#, id: "null"))
                    try sendRaw(fd, Wire.request("echo", id: "12345678901234567890"))
                    try sendRaw(fd, Wire.request("echo", params: "null", id: "21"))
                    try sendRaw(fd, Wire.request("echo", params: #"[1,"two",{"three":3}]"#, id: "22"))
                    try sendRaw(fd, Wire.request("stats", id: "23"))
                }
                #expect(
                    exchange.text
                        == [
                            Wire.result("[10]", id: "10"), Wire.result("[11]", id: "11"), Wire.result("[12]", id: "12"),
                            Wire.methodNotFound(id: "3"),
                            Wire.result(#""string id""#, id: #""abc-1""#), Wire.result(#""null id""#, id: "null"),
                            Wire.result("null", id: "12345678901234567890"), Wire.result("null", id: "21"),
                            Wire.result(#"[1,"two",{"three":3}]"#, id: "22"),
                            Wire.result(Wire.stats(requests: 10, notifications: 1, notificationFds: 0), id: "23"),
                        ].joined())
                // the unknown method's fds arrived (then closed)
                #expect(exchange.log.seen[4].texts == ["fd-0", "fd-1"])
                #expect(
                    exchange.log.seen[7].message
                        == .request(
                            ControlRequest(
                                method: "echo", params: nil, id: .number(JSONNumber(text: "12345678901234567890")!))))
                #expect(exchange.log.seen[8].message == .request(ControlRequest(method: "echo", params: .null, id: 21)))
                #expect(paramsTexts(exchange.log)[9] == #"[1,"two",{"three":3}]"#)
            }
        }
    }

    /// The cases spec §10 lists as "missing from both suites", and §11's checklist.
    @Suite("ControlChannel: stream edge cases", .timeLimit(.minutes(2)))
    struct ControlChannelStreamTests {
        // Byte-by-byte delivery, splitting 2-, 3- and 4-byte UTF-8 sequences; the fd rides
        // on the second byte of the 4-byte sequence.
        @Test func byteByByteWithSplitUTF8() async throws {
            try await expectNoFileDescriptorLeaks {
                let text =
                    #"{"jsonrpc":"2.0","method":"readFds","params":{"2":"é","3":"€","4":"😀","mix":"aé€😀z"},"id":7,"fds":1}"#
                let fdIndex = Array(text.utf8).firstIndex(of: 0xF0)! + 1
                let outcome = try await onDedicatedThread { () throws -> (Int, ServerLog, String) in
                    let server = try DriverHarness()
                    let bytes = Array(text.utf8)
                    var early = 0
                    for (index, byte) in bytes.enumerated() {
                        try sendRaw(
                            server.clientFD, [byte],
                            fds: index == fdIndex ? [try makeMemfd(holding: "mid-character")] : [])
                        server.step(timeout: .seconds(2))
                        if index < bytes.count - 1 { early += server.snapshot().seen.count }
                    }
                    server.run(until: { $0.seen.count == 1 }, timeout: .seconds(5))
                    server.shutdownClientWrites()
                    server.run(until: { $0.ends.count == 1 })
                    let replies = try receiveLog(from: server.clientFD, untilEndOfFile: true, timeout: .seconds(10))
                    return (early, server.finish(), String(decoding: replies.bytes, as: UTF8.self))
                }
                let (early, log, replies) = outcome
                #expect(early == 0, "a message was dispatched before its last byte")
                #expect(
                    log.seen.map(\.message) == [
                        .request(
                            ControlRequest(
                                method: "readFds", params: ["2": "é", "3": "€", "4": "😀", "mix": "aé€😀z"], id: 7))
                    ])
                #expect(log.seen.first?.texts == ["mid-character"])
                #expect(replies == Wire.result(Wire.readFds(["mid-character"]), id: "7"))
                #expect(log.ends == [.peerClosed])
            }
        }

        // The same byte by byte for an echo: the reply carries the characters intact.
        @Test func byteByByteEchoKeepsMultibyteCharacters() async throws {
            try await expectNoFileDescriptorLeaks {
                let params = #"["é","€","😀","\u00e9\ud83d\ude00"]"#
                let text = "  \r\n" + Wire.request("echo", params: params, id: #""ü""#) + "\n"
                let outcome = try await onDedicatedThread { () throws -> (Int, String) in
                    let server = try DriverHarness()
                    var early = 0
                    let bytes = Array(text.utf8)
                    for (index, byte) in bytes.enumerated() {
                        try sendRaw(server.clientFD, [byte])
                        server.step(timeout: .seconds(2))
                        if index < bytes.count - 2 { early += server.snapshot().seen.count }
                    }
                    server.shutdownClientWrites()
                    server.run(until: { $0.ends.count == 1 })
                    let replies = try receiveLog(from: server.clientFD, untilEndOfFile: true, timeout: .seconds(10))
                    server.finish()
                    return (early, String(decoding: replies.bytes, as: UTF8.self))
                }
                #expect(outcome.0 == 0)
                #expect(outcome.1 == Wire.result(#"["é","€","😀","é😀"]"#, id: #""ü""#))
            }
        }

        // Many messages in one write, separated by nothing or by any JSON whitespace.
        @Test func manyMessagesInOneWrite() async throws {
            try await expectNoFileDescriptorLeaks {
                let separators = ["", " ", "\n", "\r\n", "\t", " \n\t\r "]
                let exchange = try await controlExchange { fd in
                    let text = (0..<300).map {
                        Wire.request("echo", params: "\($0)", id: "\($0)") + separators[$0 % separators.count]
                    }.joined()
                    try sendRaw(fd, text)
                }
                expectText(exchange.text, (0..<300).map { Wire.result("\($0)", id: "\($0)") }.joined())
                #expect(exchange.log.seen.count == 300)
            }
        }

        // A client that pipelines requests and half-closes before reading gets every
        // answer, a 1 MiB one included (more than the socket holds), then EOF.
        @Test func aHalfClosingClientGetsEveryAnswer() async throws {
            try await expectNoFileDescriptorLeaks {
                let big = String(repeating: "half-close ", count: 100_000)
                let exchange = try await controlExchange { fd in
                    var messages: [(ControlMessage, [Int32])] = [
                        (.request(ControlRequest(method: "echo", params: .string(big), id: 0)), [])
                    ]
                    for id in 1...400 {
                        messages.append(
                            (
                                .request(
                                    ControlRequest(
                                        method: "echo", params: .number(JSONNumber(id)), id: .number(JSONNumber(id)))),
                                []
                            ))
                    }
                    messages.append((.request(ControlRequest(method: "readFds", id: 401)), try makePipes(3)))
                    try sendQueued(fd, messages)
                }
                expectText(
                    exchange.text,
                    Wire.result("\"\(big)\"", id: "0") + (1...400).map { Wire.result("\($0)", id: "\($0)") }.joined()
                        + Wire.result(Wire.readFds(pipeContents(3)), id: "401"))
                #expect(exchange.replies.sawEndOfFile)
                #expect(exchange.log.ends == [.peerClosed])
            }
        }

        // The same through ServiceServer (muxctl serve's loop) and a real socket path.
        @Test func aHalfClosingClientGetsEveryAnswerFromServiceServer() async throws {
            try await expectNoFileDescriptorLeaks {
                let directory = try makeTemporaryDirectory()
                defer { rmdir(directory) }
                let path = directory + "/s.sock"
                let big = String(repeating: "service ", count: 100_000)
                let text = try await onDedicatedThread { () throws -> String in
                    let server = try ServiceServer(
                        name: "halfclose", socketPath: path, identityPath: nil, servedProtocols: [],
                        controlHandler: TestControlMethods.serviceHandler
                    ) { _ in nil }
                    defer { server.stop() }
                    let socket = try UnixSocket.connect(to: path)
                    var messages: [(ControlMessage, [Int32])] = [
                        (.request(ControlRequest(method: "echo", params: .string(big), id: 0)), [])
                    ]
                    for id in 1...300 {
                        messages.append(
                            (
                                .request(
                                    ControlRequest(
                                        method: "echo", params: .number(JSONNumber(id)), id: .number(JSONNumber(id)))),
                                []
                            ))
                    }
                    try sendQueued(socket.rawValue, messages)
                    shutdown(socket.rawValue, Int32(SHUT_WR))
                    let replies = try receiveLog(from: socket.rawValue, untilEndOfFile: true, timeout: .seconds(20))
                    return String(decoding: replies.bytes, as: UTF8.self)
                }
                expectText(
                    text,
                    Wire.result("\"\(big)\"", id: "0") + (1...300).map { Wire.result("\($0)", id: "\($0)") }.joined())
            }
        }

        // Fds before the message (on leading whitespace), inside it (on a middle chunk) and
        // after it (on a continuation space); the message waits for the last one.
        @Test func fdsBeforeInsideAndAfterTheMessage() async throws {
            try await expectNoFileDescriptorLeaks {
                let outcome = try await onDedicatedThread { () throws -> ([Int], ServerLog, String) in
                    let server = try DriverHarness()
                    var seenAfterEachChunk: [Int] = []
                    let chunks: [(String, String?)] = [
                        (" ", "before"), (#"{"jsonrpc":"2.0","method":"readFds","#, "inside"),
                        (#""id":1,"fds":3}"#, nil), (" ", "after"),
                    ]
                    for (text, content) in chunks {
                        try sendRaw(server.clientFD, text, fds: try content.map { [try makePipe(holding: $0)] } ?? [])
                        server.step(timeout: .seconds(2))
                        server.run(until: { _ in false }, timeout: .milliseconds(30))
                        seenAfterEachChunk.append(server.snapshot().seen.count)
                    }
                    server.shutdownClientWrites()
                    server.run(until: { $0.ends.count == 1 })
                    let replies = try receiveLog(from: server.clientFD, untilEndOfFile: true, timeout: .seconds(10))
                    return (seenAfterEachChunk, server.finish(), String(decoding: replies.bytes, as: UTF8.self))
                }
                #expect(outcome.0 == [0, 0, 0, 1])
                #expect(outcome.1.seen.first?.texts == ["before", "inside", "after"])
                #expect(outcome.2 == Wire.result(Wire.readFds(["before", "inside", "after"]), id: "1"))
            }
        }

        // Fds only in continuations: the complete message, then three spaces each with an fd.
        @Test func fdsOnlyInContinuations() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, Wire.request("readFds", id: "1", fds: 3))
                    for index in 0..<3 { try sendRaw(fd, " ", fds: [try makePipe(holding: "c\(index)")]) }
                    try sendRaw(fd, Wire.request("echo", id: "2"))
                }
                #expect(
                    exchange.text == Wire.result(Wire.readFds(["c0", "c1", "c2"]), id: "1")
                        + Wire.result("null", id: "2"))
            }
        }

        // 600 fds client → server: the OutboundQueue's 500 is refused (EINVAL), halved to
        // 250, and the driver's receiver waits for the continuation batches.
        @Test func sixHundredFdsFromTheClient() async throws {
            try await expectNoFileDescriptorLeaks {
                let limitAfter = LimitBox()
                let exchange = try await controlExchange { fd in
                    limitAfter.value = try sendQueued(
                        fd,
                        [
                            (.request(ControlRequest(method: "readFds", id: 1)), try makePipes(600)),
                            (.request(ControlRequest(method: "echo", params: "next", id: 2)), []),
                        ])
                }
                #expect(limitAfter.value == 250, "the batch was not halved")
                expectText(
                    exchange.text,
                    Wire.result(Wire.readFds(pipeContents(600)), id: "1") + Wire.result(#""next""#, id: "2"))
                #expect(exchange.log.seen.first?.texts == pipeContents(600))
            }
        }

        // 600 fds server → client: the driver's sender batches 250/250/100 (recvmsg counts),
        // the JSON goes with the first batch and two continuation spaces carry the rest.
        @Test func sixHundredFdsFromTheServer() async throws {
            try await expectNoFileDescriptorLeaks {
                let reply = Wire.result(#"{"count":600}"#, id: "2", fds: 600)
                let (replies, log) = try await onDedicatedThread { () throws -> (ReceiveLog, ServerLog) in
                    let server = try DriverHarness()
                    server.start()
                    defer { server.finish(timeout: .seconds(2)) }
                    try sendRaw(
                        server.clientFD, Wire.request("createFds", params: #"{"count":600,"prefix":"x"}"#, id: "2"))
                    let replies = try receiveLog(
                        from: server.clientFD, byteCount: reply.utf8.count + 2, fdCount: 600, timeout: .seconds(20))
                    return (replies, server.finish())
                }
                #expect(String(decoding: replies.bytes, as: UTF8.self) == reply + "  ")
                #expect(replies.fdCountsPerCall == [250, 250, 100])
                #expect(replies.calls.map(\.bytes) == [reply.utf8.count, 1, 1])
                #expect(replies.contents == (0..<600).map { "x\($0)" })
                #expect(log.ends == [.peerClosed])
            }
        }

        // A waiting message blocks later ones: message 1 waits for its second fd; message 2
        // is dispatched only after it, and the fds keep FIFO order.
        @Test func aWaitingMessageBlocksLaterOnes() async throws {
            try await expectNoFileDescriptorLeaks {
                let outcome = try await onDedicatedThread { () throws -> ([Int], ServerLog) in
                    let server = try DriverHarness()
                    var seen: [Int] = []
                    try sendRaw(
                        server.clientFD, Wire.request("readFds", id: "1", fds: 2) + "\n",
                        fds: [try makePipe(holding: "one")])
                    server.run(until: { _ in false }, timeout: .milliseconds(50))
                    seen.append(server.snapshot().seen.count)
                    try sendRaw(server.clientFD, "\t", fds: [try makePipe(holding: "two")])
                    try sendRaw(
                        server.clientFD, Wire.request("readFds", id: "2", fds: 1), fds: [try makePipe(holding: "three")]
                    )
                    server.run(until: { $0.seen.count == 2 }, timeout: .seconds(5))
                    seen.append(server.snapshot().seen.count)
                    return (seen, server.finish())
                }
                #expect(outcome.0 == [0, 2])
                #expect(outcome.1.methods == ["readFds", "readFds"])
                #expect(outcome.1.seen.map(\.texts) == [["one", "two"], ["three"]])
            }
        }

        // The spec's subtlety: the missing fd arrives with the next message's bytes; the
        // waiting message takes it (FIFO) and the next one is dispatched after it.
        @Test func theWaitingMessageTakesAnFdCarriedByTheNextMessage() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, Wire.request("readFds", id: "1", fds: 1))
                    try sendRaw(fd, Wire.request("readFds", id: "2"), fds: [try makePipe(holding: "meant for 2")])
                }
                #expect(
                    exchange.text == Wire.result(Wire.readFds(["meant for 2"]), id: "1")
                        + Wire.result(Wire.readFds([]), id: "2"))
            }
        }

        // Non-whitespace while waiting → Mismatched Count: the waiting request gets -32050,
        // then the rpc.epitaph, then EOF; the queued fd is closed.
        @Test(arguments: ["x", "{", "]", "\u{0C}"])
        func nonWhitespaceWhileWaitingIsAMismatchedCount(stray: String) async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange(halfClose: false) { fd in
                    try sendRaw(
                        fd, Wire.request("readFds", id: #""w""#, fds: 2) + " \n",
                        fds: [try makePipe(holding: "one of two")])
                    try sendRaw(fd, stray)
                }
                let reason = "mismatched count: message declared 2 fds, 1 arrived"
                #expect(
                    exchange.text == Wire.fileDescriptorError(id: #""w""#, reason: reason)
                        + Wire.epitaph(status: -20, reason: reason))
                #expect(exchange.replies.sawEndOfFile)
                #expect(exchange.log.ends == [.failed(Epitaph(status: .badState, reason: reason))])
            }
        }

        // A notification waiting for fds gets no -32050 response, only the epitaph.
        @Test func aNotificationWaitingAtEndOfInputGetsOnlyTheEpitaph() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, Wire.request("echo", id: "1"))
                    try sendRaw(fd, Wire.notification("note", fds: 4), fds: try makePipes(3))
                }
                let reason = "mismatched count: message declared 4 fds, 3 arrived"
                #expect(exchange.text == Wire.result("null", id: "1") + Wire.epitaph(status: -20, reason: reason))
            }
        }

        // Invalid `fds` values end the connection with an epitaph (never a crash); the fd
        // that came along is closed. Status per MuxError.epitaphStatus.
        @Test(arguments: [
            ("-1", -10, #""fds" must be a non-negative integer, found -1"#),
            ("1.5", -10, #""fds" must be a non-negative integer, found 1.5"#),
            ("1.0", -10, #""fds" must be a non-negative integer, found 1.0"#),
            ("1e0", -10, #""fds" must be a non-negative integer, found 1e0"#),
            (#""2""#, -10, #""fds" must be a non-negative integer, found "2""#),
            ("true", -10, #""fds" must be a non-negative integer, found true"#),
            ("[1]", -10, #""fds" must be a non-negative integer, found an array"#),
            ("{}", -10, #""fds" must be a non-negative integer, found an object"#),
            ("1025", -3, #""fds" is 1025, above the limit of 1024"#),
            ("4294967297", -3, #""fds" is 4294967297, above the limit of 1024"#),
            ("123456789012345678901234567890", -3, #""fds" is 9223372036854775807, above the limit of 1024"#),
        ])
        func invalidFdsValuesEndTheConnection(value: String, status: Int, reason: String) async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange(halfClose: false) { fd in
                    try sendRaw(
                        fd, #"{"jsonrpc":"2.0","method":"readFds","id":1,"fds":\#(value)}"#,
                        fds: [try makePipe(holding: "orphan")])
                }
                #expect(exchange.text == Wire.epitaph(status: status, reason: reason))
                #expect(exchange.replies.sawEndOfFile)
                #expect(exchange.log.seen.isEmpty)
                #expect(
                    exchange.log.ends == [
                        .failed(Epitaph(status: EpitaphStatus(rawValue: Int32(status)), reason: reason))
                    ])
            }
        }

        // ... also after earlier traffic on the connection.
        @Test func invalidFdsAfterAValidMessage() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange(halfClose: false) { fd in
                    try sendRaw(fd, Wire.request("echo", params: "1", id: "1"))
                    try sendRaw(fd, #"{"jsonrpc":"2.0","method":"readFds","id":2,"fds":-1}"#, fds: try makePipes(2))
                }
                let reason = #""fds" must be a non-negative integer, found -1"#
                #expect(exchange.text == Wire.result("1", id: "1") + Wire.epitaph(status: -10, reason: reason))
            }
        }

        // Invalid UTF-8 inside a string → epitaph INVALID_FRAME, at the first byte that
        // cannot belong to a valid sequence: a bad lead, a bad continuation, an overlong
        // form, a surrogate, a code point above U+10FFFF, a sequence cut short by the quote.
        @Test(
            arguments: [
                ([0xFF], 0), ([0xC3, 0x28], 1), ([0xC0, 0xAF], 0), ([0xED, 0xA0, 0x80], 1),
                ([0xF4, 0x90, 0x80, 0x80], 1), ([0xE2, 0x82], 2),
            ] as [([UInt8], Int)])
        func invalidUTF8EndsTheConnection(bad: [UInt8], at position: Int) async throws {
            try await expectNoFileDescriptorLeaks {
                let prefix = Array(#"{"jsonrpc":"2.0","method":"echo","params":"ok "#.utf8)
                let message = prefix + bad + Array(#"","id":1}"#.utf8)
                let exchange = try await controlExchange(halfClose: false) { fd in try sendRaw(fd, message) }
                let reason = "invalid UTF-8 at offset \(prefix.count + position)"
                #expect(exchange.text == Wire.epitaph(status: -45, reason: reason))
                #expect(exchange.log.ends == [.failed(Epitaph(status: .invalidFrame, reason: reason))])
            }
        }

        // Nesting deeper than a configured limit → OUT_OF_RANGE; exactly at it is fine.
        @Test func nestingDeeperThanTheLimit() async throws {
            try await expectNoFileDescriptorLeaks {
                let limits = MuxLimits(control: ControlLimits(maxMessageBytes: 4096, maxDepth: 4))
                let exchange = try await controlExchange(limits: limits, halfClose: false) { fd in
                    try sendRaw(fd, Wire.request("echo", params: "[[[1]]]", id: "1"))  // object + 3 arrays = 4
                    try sendRaw(fd, Wire.request("echo", params: "[[[[1]]]]", id: "2"))  // 5
                }
                #expect(
                    exchange.text == Wire.result("[[[1]]]", id: "1")
                        + Wire.epitaph(status: -14, reason: "nesting deeper than 4"))
                #expect(exchange.log.ends == [.failed(Epitaph(status: .outOfRange, reason: "nesting deeper than 4"))])
            }
        }

        // A first message too deep: the epitaph is JSON too.
        @Test func firstMessageTooDeep() async throws {
            try await expectNoFileDescriptorLeaks {
                let limits = MuxLimits(control: ControlLimits(maxDepth: 2))
                let exchange = try await controlExchange(limits: limits, halfClose: false) { fd in
                    try sendRaw(fd, Wire.request("echo", params: #"{"a":[1]}"#, id: "1"))
                }
                #expect(exchange.text == Wire.epitaph(status: -14, reason: "nesting deeper than 2"))
            }
        }

        // A message larger than a configured limit → OUT_OF_RANGE; exactly at it is fine.
        @Test func messageLargerThanTheLimit() async throws {
            try await expectNoFileDescriptorLeaks {
                let limit = 256
                let limits = MuxLimits(control: ControlLimits(maxMessageBytes: limit, maxDepth: 16))
                func message(bytes: Int, id: Int) -> String {
                    let empty = Wire.request("echo", params: #""""#, id: "\(id)")
                    return Wire.request(
                        "echo", params: "\"" + String(repeating: "s", count: bytes - empty.utf8.count) + "\"",
                        id: "\(id)")
                }
                let fits = message(bytes: limit, id: 1)
                let tooBig = message(bytes: limit + 1, id: 2)
                #expect(fits.utf8.count == limit && tooBig.utf8.count == limit + 1)
                let exchange = try await controlExchange(limits: limits, halfClose: false) { fd in
                    try sendRaw(fd, fits)
                    try sendRaw(fd, tooBig)
                }
                let echoed = String(
                    fits.dropFirst(#"{"jsonrpc":"2.0","method":"echo","params":"#.count).dropLast(#","id":1}"#.count))
                #expect(
                    exchange.text == Wire.result(echoed, id: "1")
                        + Wire.epitaph(status: -14, reason: "message larger than 256 bytes"))
                #expect(exchange.log.seen.count == 1)
            }
        }

        // Surplus fds carry over to the next message (FIFO); surplus left at a clean end of
        // stream is closed.
        @Test func surplusFdsCarryOverAndAreClosedAtTheEnd() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, Wire.request("readFds", id: "1", fds: 1), fds: try makePipes(3))
                    try sendRaw(fd, Wire.request("readFds", id: "2", fds: 2))
                    try sendRaw(fd, Wire.request("echo", params: #""no fds declared""#, id: "3"), fds: try makePipes(2))
                }
                #expect(
                    exchange.text == Wire.result(Wire.readFds(["fd-0"]), id: "1")
                        + Wire.result(Wire.readFds(["fd-1", "fd-2"]), id: "2")
                        + Wire.result(#""no fds declared""#, id: "3"))
                #expect(exchange.log.ends == [.peerClosed])
            }
        }

        // EOF in the middle of a message (no fds pending) → BAD_STATE epitaph.
        @Test func endOfInputInsideAMessage() async throws {
            try await expectNoFileDescriptorLeaks {
                let partial = #"{"jsonrpc":"2.0","method":"echo","par"#
                let exchange = try await controlExchange { fd in try sendRaw(fd, partial) }
                let reason = "stream ended inside a message after \(partial.utf8.count) bytes"
                #expect(exchange.text == Wire.epitaph(status: -20, reason: reason))
                #expect(exchange.log.ends == [.failed(Epitaph(status: .badState, reason: reason))])
            }
        }

        // A JSON-RPC batch array after control traffic is not a control message: the
        // connection ends with a JSON epitaph (both references reject batches).
        @Test func aBatchArrayIsRejected() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange(halfClose: false) { fd in
                    try sendRaw(fd, Wire.request("echo", id: "1"))
                    try sendRaw(fd, "[" + Wire.request("echo", id: "2") + "]")
                }
                let messages = try decodeMessages(exchange.replies.bytes)
                #expect(messages.count == 2)
                #expect(messages.first == .response(ControlResponse(id: 1, result: .null)))
                guard case let .notification(epitaph)? = messages.last else {
                    Issue.record("no epitaph: \(exchange.text)")
                    return
                }
                #expect(epitaph.method == "rpc.epitaph")
                #expect(epitaph.params?["status"] == .number(-45))
                #expect(epitaph.params?["code"] == .number(-32050))
            }
        }

        // A well-framed object that is not JSON-RPC 2.0 gets -32600, its fds are closed,
        // and the connection goes on.
        @Test func anObjectThatIsNotJSONRPCIsAnsweredAndTheConnectionGoesOn() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(fd, #"{"jsonrpc":"1.0","method":"echo","id":5,"fds":1}"#, fds: try makePipes(1))
                    try sendRaw(fd, Wire.request("echo", params: "6", id: "6"))
                }
                #expect(
                    exchange.text == Wire.error(
                        code: -32600, message: "Invalid Request",
                        data: Wire.quoted(#""jsonrpc" is "1.0", not "2.0""#), id: "5")
                        + Wire.result("6", id: "6"))
                #expect(exchange.log.seen.count == 1)
            }
        }

        // Duplicate `fds` members: the last wins.
        @Test func duplicateFdsMembersLastWins() async throws {
            try await expectNoFileDescriptorLeaks {
                let exchange = try await controlExchange { fd in
                    try sendRaw(
                        fd, #"{"jsonrpc":"2.0","method":"readFds","fds":1,"id":1,"fds":2}"#, fds: try makePipes(2))
                }
                #expect(exchange.text == Wire.result(Wire.readFds(["fd-0", "fd-1"]), id: "1"))
            }
        }
    }

    /// ``ControlClient`` against the driver (through a real listening socket) and against
    /// a raw peer that batches its reply one fd per `sendmsg`.
    @Suite("ControlChannel: ControlClient", .timeLimit(.minutes(2)))
    struct ControlChannelClientTests {
        @Test func sixHundredFdsBothWays() async throws {
            try await expectNoFileDescriptorLeaks {
                struct Outcome: Sendable {
                    var read: ControlResponse
                    var created: ControlResponse
                    var createdContents: [String]
                    var stats: ControlResponse
                }
                let (outcome, log) = try await onDedicatedThread {
                    try withControlClient { client in
                        let read = try client.call(
                            "readFds", fileDescriptors: queue(owning: try makePipes(600)), timeout: .seconds(20))
                        let created = try client.call(
                            "createFds", params: ["count": 600, "prefix": "cc-"], timeout: .seconds(20))
                        let contents = drainContents(created.takeFileDescriptors())
                        try client.notify("note", fileDescriptors: queue(owning: try makePipes(3)))
                        let stats = try client.call("stats")
                        return Outcome(
                            read: read.response, created: created.response, createdContents: contents,
                            stats: stats.response)
                    }
                }
                #expect(
                    outcome.read
                        == ControlResponse(
                            id: 1,
                            result: [
                                "count": 600, "contents": .array(pipeContents(600).map { .string($0) }),
                            ]))
                #expect(outcome.created == ControlResponse(id: 2, result: ["count": 600]))
                #expect(outcome.createdContents == (0..<600).map { "cc-\($0)" })
                #expect(
                    outcome.stats
                        == ControlResponse(id: 3, result: ["requests": 3, "notifications": 1, "notificationFds": 3]))
                #expect(log.fdCounts == [600, 0, 3, 0])
                #expect(log.ends == [.peerClosed])
            }
        }

        // test_receiver_waits_for_batched_response_fds: a raw server replies with 5 fds at
        // one fd per sendmsg; the client's receiver waits for all of them.
        @Test func waitsForBatchedResponseFds() async throws {
            try await expectNoFileDescriptorLeaks {
                let directory = try makeTemporaryDirectory()
                defer { rmdir(directory) }
                let path = directory + "/raw.sock"
                let listener = try UnixSocket.bindListener(path: path, serviceName: "raw").release()
                defer { close(listener); unlink(path) }
                async let served = onDedicatedThread { () throws -> (ControlMessage?, [Int], Bool) in
                    guard try SocketIO.waitUntilReadable(listener, timeout: .seconds(10)) else {
                        throw EndpointMuxError.timedOut(operation: "accept")
                    }
                    let connection = accept(listener, nil, nil)
                    guard connection >= 0 else { throw FixtureError(operation: "accept", errno: errno) }
                    defer { close(connection) }
                    let reader = ControlReader()
                    let request = try reader.next(from: connection)
                    var outbound = OutboundQueue(maxFileDescriptorsPerSendmsg: 1)
                    let fds = try (0..<5).map { try makeMemfd(holding: "r\($0)") }
                    let reply = ControlMessage.response(
                        ControlResponse(id: request?.message.id ?? .null, result: "five"))
                    outbound.enqueue(reply.encoded(fileDescriptorCount: 5), fileDescriptors: queue(owning: fds))
                    try outbound.flushBlocking(to: connection, deadline: .now + .seconds(10))
                    let end = try reader.next(from: connection)  // the client closes
                    return (request?.message, reader.fdCountsPerCall, end == nil)
                }
                let reply = try await onDedicatedThread { () throws -> (ControlResponse, [String]) in
                    let client = try ControlClient(socketPath: path)
                    let reply = try client.call("give", params: ["n": 5], timeout: .seconds(10))
                    return (reply.response, drainContents(reply.takeFileDescriptors()))
                }
                let (request, _, cleanEnd) = try await served
                #expect(request == .request(ControlRequest(method: "give", params: ["n": 5], id: 1)))
                #expect(reply.0 == ControlResponse(id: 1, result: "five"))
                #expect(reply.1 == ["r0", "r1", "r2", "r3", "r4"])
                #expect(cleanEnd)
            }
        }

        // A request the server holds waiting for fds when the client breaks the rule: the
        // client reads the -32050 answer to that request, then EndpointMuxError.epitaph, then EOF.
        @Test func theWaitingRequestGetsTheFileDescriptorErrorThenTheEpitaph() async throws {
            try await expectNoFileDescriptorLeaks {
                let reason = "mismatched count: message declared 3 fds, 1 arrived"
                let (outcome, log) = try await onDedicatedThread {
                    try withControlClient { client -> (ControlResponse, EndpointMuxError?, EndpointMuxError?) in
                        try sendRaw(
                            client.fileDescriptor, Wire.request("readFds", id: "9", fds: 3), fds: try makePipes(1))
                        try sendRaw(client.fileDescriptor, "?")
                        let answer = try client.waitForResponse(9, deadline: .now + .seconds(10))
                        var epitaph: EndpointMuxError?
                        do throws(EndpointMuxError) {
                            _ = try client.waitForResponse(10, deadline: .now + .seconds(10))
                        } catch { epitaph = error }
                        var after: EndpointMuxError?
                        do throws(EndpointMuxError) {
                            _ = try client.waitForResponse(11, deadline: .now + .seconds(10))
                        } catch { after = error }
                        return (answer.response, epitaph, after)
                    }
                }
                #expect(outcome.0 == ControlResponse(id: 9, error: .fileDescriptorError(data: .string(reason))))
                #expect(outcome.1 == .epitaph(Epitaph(status: .badState, reason: reason)))
                #expect(outcome.2 == .peerClosed)
                #expect(log.ends == [.failed(Epitaph(status: .badState, reason: reason))])
            }
        }

        // A request over the server's size limit: EndpointMuxError.epitaph with OUT_OF_RANGE.
        @Test func anOversizedRequestEndsInAnEpitaph() async throws {
            try await expectNoFileDescriptorLeaks {
                let limits = MuxLimits(control: ControlLimits(maxMessageBytes: 128))
                let (outcome, log) = try await onDedicatedThread {
                    try withControlClient(limits: limits) { client -> (ControlResponse, EndpointMuxError?) in
                        let small = try client.call("echo", params: "small")
                        var failure: EndpointMuxError?
                        do {
                            _ = try client.call(
                                "echo", params: .string(String(repeating: "big ", count: 64)),
                                fileDescriptors: queue(owning: try makePipes(2)))
                        } catch let error as EndpointMuxError { failure = error }
                        return (small.response, failure)
                    }
                }
                #expect(outcome.0 == ControlResponse(id: 1, result: "small"))
                #expect(outcome.1 == .epitaph(Epitaph(status: .outOfRange, reason: "message larger than 128 bytes")))
                #expect(log.ends == [.failed(Epitaph(status: .outOfRange, reason: "message larger than 128 bytes"))])
            }
        }

        // Unknown method (its fds closed), absent params → "result":null, array params.
        @Test func unknownMethodNullResultAndArrayParams() async throws {
            try await expectNoFileDescriptorLeaks {
                let (outcome, log) = try await onDedicatedThread {
                    try withControlClient { client in
                        [
                            try client.call("nope", fileDescriptors: queue(owning: try makePipes(2))).response,
                            try client.call("echo").response,
                            try client.call("echo", params: [1, "two"]).response,
                        ]
                    }
                }
                #expect(
                    outcome == [
                        ControlResponse(id: 1, error: .methodNotFound()),
                        ControlResponse(id: 2, result: .null),
                        ControlResponse(id: 3, result: [1, "two"]),
                    ])
                #expect(log.fdCounts == [2, 0, 0])
            }
        }
    }

    /// MSG_CTRUNC: descriptors the kernel could not deliver.
    @Suite("ControlChannel: MSG_CTRUNC", .timeLimit(.minutes(2)))
    struct ControlChannelTruncationTests {
        // A receiver sized for fewer fds than one sendmsg carries: controlTruncated with
        // the delivered ones closed, nothing leaked.
        @Test func aReceiverSizedForFewerFdsThanSent() async throws {
            try await expectNoFileDescriptorLeaks {
                let (failure, log) = try await onDedicatedThread { () throws -> (EndpointMuxError?, ServerLog) in
                    let server = try DriverHarness()
                    server.start()
                    defer { server.finish(timeout: .seconds(2)) }
                    try sendRaw(
                        server.clientFD, Wire.request("createFds", params: #"{"count":600,"prefix":"t"}"#, id: "1"))
                    let reader = ControlReader(maxFileDescriptors: 100)
                    var failure: EndpointMuxError?
                    do { _ = try reader.next(from: server.clientFD) } catch let error as EndpointMuxError {
                        failure = error
                    }
                    shutdown(server.clientFD, Int32(SHUT_RDWR))
                    return (failure, server.finish())
                }
                #expect(failure == .controlTruncated(received: 100))
                #expect(log.methods == ["createFds"])
                #expect(log.ends.count == 1)
            }
        }

        // The driver under a lowered RLIMIT_NOFILE: recvmsg can install only 3 of 10 fds →
        // MSG_CTRUNC, fatal, with a JSON epitaph (IO) and EOF; nothing leaked.
        @Test func theDriverTreatsControlTruncationAsFatal() async throws {
            try await expectNoFileDescriptorLeaks {
                let (replies, log) = try await onDedicatedThread { () throws -> (String, ServerLog) in
                    let server = try DriverHarness()
                    try sendRaw(server.clientFD, Wire.request("echo", id: "1"))
                    server.run(until: { $0.seen.count == 1 })
                    try sendRaw(server.clientFD, Wire.request("readFds", id: "2", fds: 10), fds: try makePipes(10))
                    try withLoweredDescriptorLimit(room: 3) {
                        server.step(timeout: .seconds(2))
                    }
                    let replies = try receiveLog(from: server.clientFD, untilEndOfFile: true, timeout: .seconds(10))
                    return (String(decoding: replies.bytes, as: UTF8.self), server.finish())
                }
                let reason = EndpointMuxError.controlTruncated(received: 3).description
                #expect(replies == Wire.result("null", id: "1") + Wire.epitaph(status: -40, reason: reason))
                #expect(log.ends == [.failed(Epitaph(status: .io, reason: reason))])
                #expect(log.seen.count == 1)
            }
        }

        // A real child: `muxctl control … createFds` with 600 fds under RLIMIT_NOFILE 64 against an
        // in-process ServiceServer fails cleanly with the typed error (exit 1, no crash); the
        // server is unharmed and leaks nothing.
        @Test func muxctlControlUnderALowDescriptorLimitFailsCleanly() async throws {
            guard let muxctl = muxctlExecutable() else {
                Issue.record("muxctl is not built (swift build --product muxctl)")
                return
            }
            try await expectNoFileDescriptorLeaks {
                let directory = try makeTemporaryDirectory()
                defer { rmdir(directory) }
                let path = directory + "/s.sock"
                let (child, after, afterContents) = try await onDedicatedThread {
                    () throws -> (ChildOutcome, ControlResponse, [String]) in
                    let server = try ServiceServer(
                        name: "ctrunc", socketPath: path, identityPath: nil, servedProtocols: [],
                        controlHandler: TestControlMethods.serviceHandler
                    ) { _ in nil }
                    defer { server.stop() }
                    let command = [
                        muxctl, "control", "--socket", path, "createFds", "--params", #"{"count":600,"prefix":"x"}"#,
                    ]
                    let argv =
                        FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit")
                        ? ["/usr/bin/prlimit", "--nofile=64:64"] + command
                        : ["/bin/sh", "-c", #"ulimit -n 64 && exec "$0" "$@""#] + command
                    let child = try runChild(argv, timeout: .seconds(30))
                    let client = try ControlClient(socketPath: path)
                    let reply = try client.call("createFds", params: ["count": 3, "prefix": "ok"])
                    return (child, reply.response, drainContents(reply.takeFileDescriptors()))
                }
                #expect(!child.timedOut)
                #expect(child.signal == nil, "muxctl died of signal \(child.signal ?? 0): \(child.stderr)")
                #expect(
                    child.exitCode == 1, "exit \(String(describing: child.exitCode)): \(child.stdout) \(child.stderr)")
                #expect(child.stdout.isEmpty)
                #expect(
                    child.stderr.hasPrefix(
                        "muxctl control: recvmsg control data truncated (MSG_CTRUNC): file descriptors were dropped; the "
                    ),
                    "\(child.stderr)")
                #expect(after == ControlResponse(id: 1, result: ["count": 3]))
                #expect(afterContents == ["ok0", "ok1", "ok2"])
            }
        }
    }
}

/// Runs `body` with a ``ControlClient`` connected to a started ``DriverHarness``, releases
/// the client (the server then reads EOF), and returns the result with the server's log.
func withControlClient<T>(limits: MuxLimits = MuxLimits(), _ body: (ControlClient) throws -> T) throws -> (T, ServerLog)
{
    let server: DriverHarness
    let result: Result<T, any Error>
    do {
        let (client, harness) = try connectedControlClient(limits: limits)
        server = harness
        result = Result { try body(client) }
    }
    let log = server.finish()
    return (try result.get(), log)
}

/// The contents of every fd in `fds`, in order (each closed after reading).
func drainContents(_ fds: consuming FileDescriptorQueue) -> [String] {
    var texts: [String] = []
    while let fd = fds.popFirst() { texts.append(String(decoding: readEverything(fd.rawValue), as: UTF8.self)) }
    return texts
}

/// A value set on another thread and read after it joined.
final class LimitBox: @unchecked Sendable {
    var value = 0
}

/// Runs `body` with RLIMIT_NOFILE lowered so that exactly `room` more descriptors can be
/// opened: every free number below the highest open descriptor is filled with /dev/null
/// first, and the limit set just above it. Restores everything afterwards.
@discardableResult
func withLoweredDescriptorLimit<R>(room: Int, _ body: () throws -> R) throws -> R {
    var original = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &original) == 0 else {
        throw FixtureError(operation: "getrlimit", errno: errno)
    }
    let numbers =
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap { Int32($0) } ?? []
    let highest = numbers.max() ?? 2
    var fillers: [Int32] = []
    defer { fillers.forEach { close($0) } }
    while true {
        let fd = open_devnull()
        guard fd >= 0 else { throw FixtureError(operation: "open /dev/null", errno: errno) }
        if fd > highest { close(fd); break }
        fillers.append(fd)
    }
    var lowered = original
    lowered.rlim_cur = rlim_t(Int(highest) + 1 + room)
    guard setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &lowered) == 0 else {
        throw FixtureError(operation: "setrlimit", errno: errno)
    }
    defer { _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &original) }
    return try body()
}

private func open_devnull() -> Int32 { open("/dev/null", O_RDONLY | O_CLOEXEC) }
