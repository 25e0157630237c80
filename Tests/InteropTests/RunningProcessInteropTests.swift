import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux

/// EndpointMux against running-process 4.10.17 from PyPI, both ways, with real processes.
@Suite(.serialized) struct RunningProcessInteropTests {
    /// (a) The package's own ServiceClient against `muxctl serve`: state up, 1000 distinct
    /// requests echoed, health probes on a 1 s interval keep passing for over 10 s.
    @Test(.timeLimit(.minutes(2)))
    func serviceClientAgainstMuxctlServe() async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let name = "interop-echo"
        let server = try await MuxctlServer.start(sandbox, name: name)
        let endpoint = server.endpoint
        let client = try await run(
            Peers.python, [Peers.script("service_client.py"), name, "0x7A63", sandbox.runtimeDirectory, "1000", "11"],
            environment: sandbox.environment, in: sandbox, label: "client", timeout: .seconds(90))
        let report = try JSONValue(parsing: client.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(client.status == 0, "client report: \(client.output) \(client.errors)")
        #expect(report["state_up"] == .bool(true))
        #expect((report["echoed"]?.numberValue?.int64 ?? 0) >= 1000)
        #expect(report["mismatched"] == .number(0))
        #expect((report["health_checks"]?.numberValue?.int64 ?? 0) >= 100)
        #expect(report["health_failures"] == .number(0))
        #expect(report["state_after"] == .string("up"))
        server.child.signal(SIGTERM)
        #expect(await server.child.wait(timeout: .seconds(10)) == 0)
        #expect(!FileManager.default.fileExists(atPath: endpoint.identityPath))
        #expect(!FileManager.default.fileExists(atPath: endpoint.socketPath))
    }

    /// (b) `muxctl probe` verifies the package's ServiceServer, and refuses it when the
    /// identity file has a wrong pid or a wrong exe hash.
    @Test(.timeLimit(.minutes(2)))
    func muxctlProbeAgainstServiceServer() async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let name = "interop-ref"
        let endpoint = try sandbox.endpoint(name: name)
        let server = try Child(
            Peers.python, [Peers.script("service_server.py"), name, "0x7A63", sandbox.runtimeDirectory],
            environment: sandbox.environment, in: sandbox, label: "pyserver")
        defer { server.closeInput() }
        #expect(
            await waitForFile(endpoint.identityPath), "ServiceServer never wrote its identity file: \(server.errors)")

        let byName = try await run(
            Peers.muxctl, ["probe", "--name", name, "--runtime-dir", sandbox.runtimeDirectory, "--json"],
            environment: sandbox.environment, in: sandbox, label: "probe-name")
        #expect(byName.status == 0, "\(byName.output) \(byName.errors)")
        let verified = try JSONValue(parsing: byName.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(verified["pid"]?.numberValue?.int64 == Int64(server.process.processIdentifier))
        #expect(verified["peer_pid"] == verified["pid"])

        let identityText = try String(contentsOfFile: endpoint.identityPath, encoding: .utf8)
        let identity = try IdentityFile.decode(Array(identityText.utf8))
        let good = sandbox.directory.appendingPathComponent("good.json").path
        try IdentityFile.encode(identity).write(toFile: good, atomically: true, encoding: .utf8)
        let bySocket = try await run(
            Peers.muxctl, ["probe", "--socket", endpoint.socketPath, "--identity", good],
            environment: sandbox.environment, in: sandbox, label: "probe-good")
        #expect(bySocket.status == 0, "\(bySocket.output) \(bySocket.errors)")

        var wrongPid = identity
        wrongPid.pid = UInt32(getpid())  // alive, but not the server
        let wrongPidPath = sandbox.directory.appendingPathComponent("wrong-pid.json").path
        try IdentityFile.encode(wrongPid).write(toFile: wrongPidPath, atomically: true, encoding: .utf8)
        let refusedPid = try await run(
            Peers.muxctl, ["probe", "--socket", endpoint.socketPath, "--identity", wrongPidPath],
            environment: sandbox.environment, in: sandbox, label: "probe-pid")
        #expect(refusedPid.status != 0 && refusedPid.status != nil)
        #expect(refusedPid.errors.contains("NOT verified"), "\(refusedPid.errors)")

        var wrongHash = identity
        wrongHash.executableHash[0] ^= 0xFF
        let wrongHashPath = sandbox.directory.appendingPathComponent("wrong-hash.json").path
        try IdentityFile.encode(wrongHash).write(toFile: wrongHashPath, atomically: true, encoding: .utf8)
        let refusedHash = try await run(
            Peers.muxctl, ["probe", "--socket", endpoint.socketPath, "--identity", wrongHashPath],
            environment: sandbox.environment, in: sandbox, label: "probe-hash")
        #expect(refusedHash.status != 0 && refusedHash.status != nil)
        #expect(refusedHash.errors.contains("exe_hash"), "\(refusedHash.errors)")

        server.closeInput()
        #expect(await server.wait(timeout: .seconds(10)) != nil)
    }
}
