import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
@testable import LegacyAdapters

/// A listening Unix socket that never accepts, its accept queue already full
/// (backlog 0, filled with connections that are never accepted).
private final class NeverAcceptingListener {
    let directory: String
    let path: String
    private let listener: OwnedFileDescriptorBox
    private var fillers: [OwnedFileDescriptorBox] = []

    init() throws {
        directory = try makeTemporaryDirectory()
        path = directory + "/full.sock"
        let socket = try UnixSocket.makeSocket()
        listener = OwnedFileDescriptorBox(socket)
        guard try UnixSocket.withAddress(path, { bind(listener.rawValue, $0, $1) }) == 0 else {
            throw FixtureError(operation: "bind", errno: errno)
        }
        guard listen(listener.rawValue, 0) == 0 else { throw FixtureError(operation: "listen", errno: errno) }
        // Fill the queue: non-blocking connects succeed until it is full, then fail with EAGAIN.
        for _ in 0..<16 {
            let filler = OwnedFileDescriptorBox(try UnixSocket.makeSocket())
            try SocketIO.setNonBlocking(filler.rawValue, true)
            let result = try UnixSocket.withAddress(path) { connect(filler.rawValue, $0, $1) }
            if result != 0 {
                guard errno == EAGAIN else { throw FixtureError(operation: "connect (filling)", errno: errno) }
                return
            }
            fillers.append(filler)
        }
        throw FixtureError(operation: "the accept queue never filled", errno: 0)
    }

    deinit {
        unlink(path)
        rmdir(directory)
    }
}

/// Measures `body` and returns its error (nil if it succeeded) and how long it took.
private func timed<T>(_ body: () throws -> T) -> (error: (any Error)?, elapsed: Duration) {
    let start = ContinuousClock.now
    do {
        _ = try body()
        return (nil, start.duration(to: .now))
    } catch {
        return (error, start.duration(to: .now))
    }
}

private func isConnectTimeout(_ error: (any Error)?) -> Bool {
    guard let error = error as? EndpointMuxError, error.code == .connectFailed else { return false }
    return error.systemCall == "connect" && error.errno == ETIMEDOUT
}

extension FileDescriptorSuites {
    @Suite struct ClientDeadlineTests {
        /// The deadline of a probe covers `connect`: a server that never accepts does not hang it.
        @Test(.timeLimit(.minutes(1)))
        func probeDeadlineCoversConnect() throws {
            try expectNoFileDescriptorLeaks {
                let server = try NeverAcceptingListener()
                let outcome = timed { try ProbeClient.probe(socketPath: server.path, timeout: .milliseconds(300)) }
                #expect(isConnectTimeout(outcome.error), "\(String(describing: outcome.error))")
                #expect(outcome.elapsed >= .milliseconds(290))
                #expect(outcome.elapsed < .milliseconds(1000), "took \(outcome.elapsed)")
            }
        }

        /// The same for the frame and control clients' connect timeouts, and a control call's deadline.
        @Test(.timeLimit(.minutes(1)))
        func frameAndControlClientConnectTimeouts() throws {
            try expectNoFileDescriptorLeaks {
                let server = try NeverAcceptingListener()
                let frame = timed { try FrameClient(socketPath: server.path, connectTimeout: .milliseconds(200)) }
                #expect(isConnectTimeout(frame.error), "\(String(describing: frame.error))")
                #expect(frame.elapsed < .milliseconds(1000), "took \(frame.elapsed)")

                let control = timed { try ControlClient(socketPath: server.path, connectTimeout: .milliseconds(200)) }
                #expect(isConnectTimeout(control.error), "\(String(describing: control.error))")
                #expect(control.elapsed < .milliseconds(1000), "took \(control.elapsed)")

                let deadline = ContinuousClock.now + .milliseconds(200)
                let call = timed { () throws -> ControlReply in
                    let client = try ControlClient(socketPath: server.path, connectDeadline: deadline)
                    return try client.call("echo", deadline: deadline)
                }
                #expect(isConnectTimeout(call.error), "\(String(describing: call.error))")
                #expect(call.elapsed < .milliseconds(1000), "took \(call.elapsed)")
            }
        }

        /// Connecting to nothing fails at once with the connect errno; a deadline already past times out.
        @Test func connectFailuresAreImmediate() throws {
            try expectNoFileDescriptorLeaks {
                let missing = timed {
                    try FrameClient(socketPath: "/tmp/emx-no-such-dir/none.sock", connectTimeout: .seconds(5))
                }
                guard let error = missing.error as? EndpointMuxError, error.code == .connectFailed,
                    let code = error.errno
                else {
                    Issue.record("expected a connect error, got \(String(describing: missing.error))")
                    return
                }
                #expect(code == ENOENT)
                #expect(missing.elapsed < .milliseconds(500))

                let server = try NeverAcceptingListener()
                let past = timed { try ControlClient(socketPath: server.path, connectDeadline: .now - .seconds(1)) }
                #expect(isConnectTimeout(past.error), "\(String(describing: past.error))")
            }
        }

        /// A connected client gets a non-blocking socket and still works normally.
        @Test(.timeLimit(.minutes(1)))
        func connectedClientWorks() throws {
            try expectNoFileDescriptorLeaks {
                var server: DriverHarness?
                do {
                    let (client, harness) = try connectedControlClient()
                    server = harness
                    #expect(fcntl(client.fileDescriptor, F_GETFL) & O_NONBLOCK != 0)
                    let reply = try client.call("echo", params: ["x": 1], timeout: .seconds(10))
                    #expect(reply.response.outcome == .result(["x": 1]))
                }
                _ = server?.finish()  // the client is gone: the server sees EOF
            }
        }

        /// An answer with the right id but neither `result` nor `error` fails the call at once,
        /// long before its timeout; so does one with both.
        @Test(
            .timeLimit(.minutes(1)),
            arguments: [
                #"{"jsonrpc":"2.0","id":1}"#,
                #"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}"#,
                #"{"jsonrpc":"2.0","id":1,"error":"not an object"}"#,
                #"{"id":1,"result":true}"#,
            ])
        func malformedAnswerIsReportedAtOnce(answer: String) throws {
            try expectNoFileDescriptorLeaks {
                let (client, server) = try makeSocketPair()
                defer { close(server) }
                let control = try ControlClient(connected: OwnedFileDescriptor(taking: client))
                let responder = Thread {
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    _ = buffer.withUnsafeMutableBytes { read(server, $0.baseAddress, $0.count) }
                    try? sendRaw(server, answer)
                }
                responder.start()
                let outcome = timed { try control.call("echo", timeout: .seconds(20)) }
                guard let error = outcome.error as? EndpointMuxError, error.code == .malformedAnswer else {
                    Issue.record("expected malformedAnswer, got \(String(describing: outcome.error))")
                    return
                }
                #expect(error.reason.contains("id 1"), "\(error.reason)")
                #expect(outcome.elapsed < .seconds(2), "took \(outcome.elapsed)")
            }
        }

        /// A malformed answer for another id does not fail this call; its own answer still arrives.
        @Test(.timeLimit(.minutes(1)))
        func malformedAnswerForAnotherIDIsKeptForItsCaller() throws {
            try expectNoFileDescriptorLeaks {
                let (client, server) = try makeSocketPair()
                defer { close(server) }
                let control = try ControlClient(connected: OwnedFileDescriptor(taking: client))
                let responder = Thread {
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    _ = buffer.withUnsafeMutableBytes { read(server, $0.baseAddress, $0.count) }
                    try? sendRaw(server, #"{"jsonrpc":"2.0","id":7} {"jsonrpc":"2.0","id":1,"result":"ok"}"#)
                }
                responder.start()
                let reply = try control.call("echo", timeout: .seconds(10))
                #expect(reply.response.outcome == .result("ok"))
                let later = timed { try control.waitForResponse(7, deadline: .now + .seconds(10)) }
                guard let error = later.error as? EndpointMuxError, case .malformedAnswer = error else {
                    Issue.record("expected malformedAnswer for id 7, got \(String(describing: later.error))")
                    return
                }
                #expect(later.elapsed < .seconds(1))
            }
        }
    }
}
