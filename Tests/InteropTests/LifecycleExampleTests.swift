import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
@testable import LegacyAdapters

/// `Examples/lifecycle` (a `ServiceGroup` running `ServiceServer` with SIGTERM as its
/// graceful-shutdown signal), run as a process: SIGTERM gives every connected client the
/// v1 `UNAVAILABLE` epitaph and then EOF, and the process exits 0 within the drain deadline.
@Suite(.serialized) struct LifecycleExampleTests {
    static var binary: String {
        ProcessInfo.processInfo.environment["ENDPOINTMUX_LIFECYCLE"]
            ?? Peers.root.appendingPathComponent(".build/debug/lifecycle-example").path
    }

    @Test(.timeLimit(.minutes(3)))
    func sigtermSendsUnavailableEpitaphsAndExitsWithinTheDrainDeadline() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw Peers.PeerMissing(path: Self.binary)
        }
        let sandbox = try Sandbox()
        let socket = sandbox.directory.appendingPathComponent("lifecycle.sock").path
        let drain = Duration.milliseconds(500)
        let daemon = try Child(
            Self.binary, [socket, "500"], environment: sandbox.environment, in: sandbox, label: "lifecycle")
        defer { daemon.signal(SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(90)  // a debug build hashes its executable first
        while !daemon.output.contains("ready") {
            guard ContinuousClock.now < deadline, daemon.process.isRunning else {
                throw NotStarted(what: "lifecycle-example", errors: daemon.errors)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Three clients, each served once (so each is a connection of the server's).
        var clients: [ScriptedClient] = []
        for id in 1...3 {
            let client = try ScriptedClient(socketPath: socket)
            client.write(
                try Frame(
                    kind: .request, payloadProtocol: 0x7A63, payload: Array("hi \(id)".utf8),
                    requestID: UInt64(id)
                ).encoded())
            let answer = try #require(client.readFrame(deadline: .now + .seconds(10)))
            #expect(try Frame(parsingFrame: answer).requestID == UInt64(id))
            clients.append(client)
        }
        let sent = ContinuousClock.now
        daemon.signal(SIGTERM)
        for (index, client) in clients.enumerated() {
            let frame = try #require(client.readFrame(deadline: .now + .seconds(5)), "client \(index): no epitaph")
            let epitaph = try #require(
                Epitaph(v1Frame: try Frame(parsingFrame: frame)), "client \(index): not an epitaph")
            #expect(epitaph.status == .unavailable)
            let (rest, sawEOF) = client.readToEnd(deadline: .now + .seconds(5))
            #expect(rest.isEmpty && sawEOF, "client \(index): EOF after the epitaph")
        }
        // Exit 0 within the drain deadline (the clients stay connected, so it runs out) plus slack.
        let status = await daemon.wait(timeout: drain + .seconds(2))
        #expect(
            status == 0, "exit status \(status.map(String.init) ?? "none: still running"); stderr: \(daemon.errors)")
        #expect(ContinuousClock.now - sent < drain + .seconds(2))
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket is removed")
        #expect(daemon.errors.contains("UNAVAILABLE"), "the epitaphs are logged")
    }
}
