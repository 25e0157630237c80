import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
import LegacyAdapters

/// `muxctl broker` (the release muxctl, `ENDPOINTMUX_MUXCTL`) against an in-process
/// `BrokerServer`: results exit 0, broker errors exit 2 with the error printed, a wrong
/// command line 64, no broker 4; a `pair` connect is acknowledged once its acceptor took it.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct MuxctlBrokerTests {
    @Test func brokerStepsAndExitStatuses() async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let socket = sandbox.directory.appendingPathComponent("netbroker.sock").path
        let identity = DaemonIdentity(
            pid: UInt32(getpid()), executablePath: "/x", executableHash: [UInt8](repeating: 1, count: 32), bootID: "",
            endpoint: IPCEndpoint(namespaceID: "netbroker", path: socket), startedAtUnixMilliseconds: 1)
        let server = try BrokerServer(
            socketPath: socket,
            policy: try BrokerPolicy(
                allowing: ["listen=tcp:127.0.0.1:*", "connect=tcp:127.0.0.1:*", "pair"],
                allowedUIDs: [UInt32(getuid())]),
            identity: identity)
        defer { server.stop() }
        func broker(
            _ arguments: [String], _ label: String
        ) async throws -> (status: Int32?, output: String, errors: String) {
            try await run(
                Peers.muxctl, ["broker", "--socket", socket] + arguments, environment: sandbox.environment,
                in: sandbox, label: label)
        }

        let listen = try await broker(["listen", "tcp:127.0.0.1:0", "close"], "listen")
        #expect(listen.status == 0, "\(listen.errors)")
        let lines = listen.output.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first?.hasPrefix("listen: listener 1 endpoint tcp:127.0.0.1:") == true, "\(listen.output)")
        #expect(lines.last == "close: listener 1 closed")

        let denied = try await broker(["listen", "tcp:0.0.0.0:8080"], "denied")
        #expect(denied.status == 2)
        #expect(
            denied.output == "error -32001 PermissionDenied: permission denied: no --allow listen=tcp:0.0.0.0:8080\n")

        let free = try BrokerEndpoint(text: "tcp:127.0.0.1:\(try closedPort())")
        let refused = try await broker(["connect", free.description], "refused")
        #expect(refused.status == 2)
        #expect(refused.output.hasPrefix("error -32003 ECONNREFUSED: "), "\(refused.output)")

        let unknown = try await broker(["accept", "99"], "unknown")
        #expect(unknown.status == 2)
        #expect(unknown.output == "error -32002 UnknownListener: unknown listener 99\n")
        let closeUnknown = try await broker(["close", "99"], "closeUnknown")
        #expect(closeUnknown.status == 2)
        #expect(closeUnknown.output.hasPrefix("error -32002 UnknownListener"))

        let usage = try await broker(["bind", "tcp:127.0.0.1:0"], "usage")
        #expect(usage.status == 64)
        let missing = try await run(
            Peers.muxctl, ["broker", "--socket", socket + ".missing", "listen", "pair"],
            environment: sandbox.environment, in: sandbox, label: "missing")
        #expect(missing.status == 4)

        // pair: the acceptor waits; the connector's answer comes once the acceptor took it.
        let acceptor = try Child(
            Peers.muxctl, ["broker", "--socket", socket, "listen", "pair", "accept"],
            environment: sandbox.environment, in: sandbox, label: "acceptor")
        acceptor.closeInput()
        var id: String?
        let deadline = ContinuousClock.now + .seconds(20)
        while id == nil, ContinuousClock.now < deadline {
            if let line = acceptor.output.split(separator: "\n").first(where: { $0.hasPrefix("listen: listener ") }) {
                id = line.split(separator: " ").dropFirst(2).first.map(String.init)
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        guard let id else {
            Issue.record("the acceptor never listened: \(acceptor.errors)")
            return
        }
        let connector = try await broker(["--timeout-ms", "5000", "connect", "listener:\(id)"], "connector")
        #expect(connector.status == 0, "\(connector.errors)")
        #expect(
            connector.output.hasPrefix("connect: connected fd local unix:(unnamed) peer unix:(unnamed)"),
            "\(connector.output)")
        #expect(await acceptor.wait(timeout: .seconds(20)) == 0)
        #expect(acceptor.output.contains("accept: listener \(id) peer pair"), "\(acceptor.output)")
    }
}

/// A TCP port on 127.0.0.1 nothing listens on (bound, then closed).
private func closedPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRNOTAVAIL) }
    return UInt16(bigEndian: address.sin_port)
}
