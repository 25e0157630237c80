@_spi(Internals) import EndpointMux
import EndpointMuxServiceLifecycle
import Glibc
@testable import LegacyAdapters
import Logging
import ServiceLifecycle
import Testing

/// `ServiceServerService` in a `ServiceGroup`, in process: graceful shutdown and
/// cancellation both end with `UNAVAILABLE` epitaphs and a bounded drain.
@Suite(.serialized) struct LifecycleTests {
    private func servedClient(_ path: String) throws -> RawClient {
        let client = try RawClient(path: path)
        client.write(try Frame(kind: .request, payloadProtocol: 0x7A63, payload: [1], requestID: 9).encoded())
        #expect(client.readFrame()?.requestID == 9)
        return client
    }

    @Test(.timeLimit(.minutes(1)))
    func gracefulShutdownSendsUnavailableAndReturnsWithinTheDrain() async throws {
        let path = temporarySocketPath("lifecycle")
        let server = try ServiceServer(
            name: "obs-lifecycle", socketPath: path, identityPath: nil,
            servedProtocols: [0x7A63]
        ) { $0.payload }
        let group = ServiceGroup(
            services: [ServiceServerService(server, drainTimeout: .milliseconds(300))],
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try await group.run() }
        let clients = try (0..<3).map { _ in try servedClient(path) }
        let start = ContinuousClock.now
        await group.triggerGracefulShutdown()
        for client in clients {
            #expect(client.readFrame().flatMap { Epitaph(v1Frame: $0) }?.status == .unavailable)
            #expect(client.readsEndOfFile())
        }
        try await running.value
        #expect(ContinuousClock.now - start < .milliseconds(300) + .seconds(2))
        #expect(access(path, F_OK) != 0, "the socket is removed")
        #expect((try? RawClient(path: path)) == nil, "nothing accepts any more")
    }

    @Test(.timeLimit(.minutes(1)))
    func cancellationAlsoStopsTheServer() async throws {
        let path = temporarySocketPath("lifecycle-cancel")
        let server = try ServiceServer(
            name: "obs-lifecycle-cancel", socketPath: path, identityPath: nil,
            servedProtocols: [0x7A63]
        ) { $0.payload }
        let service = ServiceServerService(server, drainTimeout: .milliseconds(300))
        let running = Task { try await service.run() }
        let client = try servedClient(path)
        running.cancel()
        #expect(client.readFrame().flatMap { Epitaph(v1Frame: $0) }?.status == .unavailable)
        client.write([0x01])  // the peer may still write while draining: discarded
        #expect(client.readsEndOfFile())
        try await running.value
        #expect(access(path, F_OK) != 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func theBrokerServiceStopsOnGracefulShutdown() async throws {
        let path = temporarySocketPath("lifecycle-broker")
        let capture = LogCapture()
        let broker = try BrokerServer(
            name: "obs-broker", socketPath: path, policy: BrokerPolicy(), logger: capture.logger())
        let group = ServiceGroup(
            services: [BrokerServerService(broker, drainTimeout: .milliseconds(300))],
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try await group.run() }
        let client = try RawClient(path: path)
        client.write(try ProbeRequest.random().frame.encoded())
        #expect(client.readFrame()?.payloadProtocol == 0xB232)  // served (a probe answer)
        await group.triggerGracefulShutdown()
        #expect(client.readFrame().flatMap { Epitaph(v1Frame: $0) }?.status == .unavailable)
        #expect(client.readsEndOfFile())
        try await running.value
        #expect(access(path, F_OK) != 0, "the socket is removed")
        #expect(capture.all.contains { $0.message.hasPrefix("broker stopping") && $0.level == .notice })
    }
}
