import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
@testable import LegacyAdapters

/// The README's retrofit example (`Examples/retrofit/main.swift`), run as users would run
/// it: clients that half-close after a line, or send a good line then a fatal one, get
/// every answer and then EOF, and the daemon is left idle with no fd behind.
@Suite(.serialized) struct RetrofitExampleTests {
    static var binary: String {
        ProcessInfo.processInfo.environment["ENDPOINTMUX_RETROFIT"]
            ?? Peers.root.appendingPathComponent(".build/debug/retrofit-example").path
    }

    @Test(.timeLimit(.minutes(3)))
    func halfClosingClientsGetEveryAnswerThenEOF() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw Peers.PeerMissing(path: Self.binary)
        }
        let sandbox = try Sandbox()
        let socket = sandbox.directory.appendingPathComponent("retrofit.sock").path
        let daemon = try Child(Self.binary, [socket], environment: sandbox.environment, in: sandbox, label: "retrofit")
        defer { daemon.signal(SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(90)  // a debug build hashes its executable first
        while (try? UnixSocket.connect(to: socket)) == nil {
            guard ContinuousClock.now < deadline, daemon.process.isRunning else {
                throw NotStarted(what: "retrofit-example", errors: daemon.errors)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let pid = daemon.process.processIdentifier
        // The readiness check's connection is served first (one connection at a time):
        // count fds once it and a warm-up exchange are over.
        let warmup = try ScriptedClient(socketPath: socket)
        warmup.write("warm\n")
        warmup.halfClose()
        _ = warmup.readToEnd(deadline: .now + .seconds(5))
        try await Task.sleep(for: .milliseconds(300))
        let start = try #require(DaemonStats.openFileDescriptors(pid))
        for round in 0..<200 {
            let (text, expected) =
                round.isMultiple(of: 2)
                ? ("get x\nset y\n", "GET X\nSET Y\n")  // half-close after two lines
                : ("get a\n{x}\n", "GET A\n")  // a good line, then a fatal one
            let client = try ScriptedClient(socketPath: socket)
            client.write(text)
            client.halfClose()
            let (bytes, sawEOF) = client.readToEnd(deadline: .now + .seconds(5))
            #expect(String(decoding: bytes, as: UTF8.self) == expected, "round \(round)")
            #expect(sawEOF, "round \(round): no EOF")
            if !sawEOF { break }
        }
        let after = await DaemonStats.waitForFileDescriptors(pid, atMost: start, timeout: .seconds(5))
        #expect(after == start, "fds: \(start) before, \(after.map(String.init) ?? "?") after")
        let share = try #require(await DaemonStats.cpuShare(pid, over: .seconds(1)))
        #expect(share < 0.05, "idle CPU share \(share)")
    }
}
