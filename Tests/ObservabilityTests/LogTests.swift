@_spi(Internals) import EndpointMux
import Glibc
@testable import LegacyAdapters
import Logging
import Testing

/// swift-log: the reason a connection failed reaches the adopter's logger.
@Suite(.serialized) struct LogTests {
    @Test(.timeLimit(.minutes(1)))
    func aFailedConnectionLogsItsEpitaph() async throws {
        let capture = LogCapture()
        let path = temporarySocketPath("log")
        let server = try ServiceServer(
            name: "obs-log", socketPath: path, identityPath: nil, servedProtocols: [0x7A63],
            logger: capture.logger()
        ) { frame in frame.payload }
        defer { server.stop() }
        let client = try RawClient(path: path)
        client.write(Array("GARBAGE\n".utf8))
        let epitaph = try #require(client.readFrame().flatMap { Epitaph(v1Frame: $0) })
        #expect(epitaph.status == .invalidFrame)
        #expect(client.readsEndOfFile())
        let logged = await eventually { capture.all.contains { $0.message.hasPrefix("connection ended") } }
        #expect(logged)
        let end = try #require(capture.all.first { $0.message.hasPrefix("connection ended") })
        #expect(end.level == .notice)
        #expect(end.message.contains(epitaph.reason))
        #expect(end.message.contains("INVALID_FRAME"))
        #expect(end.metadata["endpointmux.epitaph.status"] == "INVALID_FRAME")
        #expect(end.metadata["endpointmux.epitaph.reason"] == epitaph.reason)
        #expect(end.metadata["endpointmux.end"] == "failed")
        #expect(capture.all.contains { $0.message == "epitaph sent" && $0.level == .debug })
    }

    @Test(.timeLimit(.minutes(1)))
    func withoutALoggerNothingIsLoggedAndTheEngineStillServes() async throws {
        // The default: no logger. A driver without telemetry answers as before.
        var ends: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        let identity = try DaemonIdentity.current(
            endpoint: IPCEndpoint(namespaceID: "obs-nolog", path: "/tmp/none.sock"))
        let driver = ConnectionDriver(
            borrowing: ends[0], mux: EndpointMux(identity: identity, servedProtocols: [0x7A63]))
        let probe = try ProbeRequest.random().frame.encoded()
        _ = probe.withUnsafeBytes { send(ends[1], $0.baseAddress, $0.count, 0) }
        _ = driver.handle(revents: Int16(POLLIN))
        var reply = [UInt8](repeating: 0, count: 5)
        #expect(recv(ends[1], &reply, 5, 0) == 5)
        #expect(reply[0] == 0x01)
    }
}
