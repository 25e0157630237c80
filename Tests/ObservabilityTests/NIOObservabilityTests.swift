@_spi(Internals) import EndpointMux
import Glibc
import LegacyAdaptersNIO
import MetricsTestKit
import NIOCore
import NIOPosix
import Testing

/// The SwiftNIO handler logs and counts through its configuration like the POSIX adapters:
/// a peer that sends garbage ends with an epitaph whose status and reason are logged.
@Suite(.serialized) struct NIOObservabilityTests {
    @Test(.timeLimit(.minutes(1)))
    func theHandlerLogsAndCountsAFailedConnection() async throws {
        let metrics = SharedMetrics.backend
        let capture = LogCapture()
        let name = "obs-nio-\(UInt32.random(in: 0...UInt32.max))"
        let path = temporarySocketPath("nio")
        let configuration = EndpointMuxConfiguration(logger: capture.logger(), metricsDimensions: [("service", name)])
        let identity = try DaemonIdentity.current(endpoint: IPCEndpoint(namespaceID: name, path: path))
        let mux = EndpointMux(identity: identity, servedProtocols: [0x7A63])
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        EndpointMuxHandler(mux: mux, configuration: configuration))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()

        // A probe, then garbage.
        let client = try RawClient(path: path)
        client.write(try ProbeRequest.random().frame.encoded())
        #expect(client.readFrame()?.payloadProtocol == 0xB232)
        client.write(Array("GARBAGE\n".utf8))
        let epitaph = try #require(client.readFrame().flatMap { Epitaph(v1Frame: $0) })
        #expect(epitaph.status == .invalidFrame)
        #expect(client.readsEndOfFile())

        let service = [("service", name)]
        #expect(
            await eventually {
                metrics.counterTotal(label: "endpointmux_connections_ended_total", dimensions: service) == 1
            })
        #expect(metrics.counterTotal(label: "endpointmux_connections_total", dimensions: service) == 1)
        #expect(metrics.counterTotal(label: "endpointmux_probes_answered_total", dimensions: service) == 1)
        #expect(
            metrics.counterTotal(
                label: "endpointmux_epitaphs_sent_total",
                dimensions: service + [("status", "INVALID_FRAME")]) == 1)
        #expect(metrics.meters(label: "endpointmux_connections_open", dimensions: service).first?.lastValue == 0)
        let end = try #require(capture.all.first { $0.message.hasPrefix("connection ended") })
        #expect(end.level == .notice)
        #expect(end.message.contains(epitaph.reason))
        #expect(end.metadata["endpointmux.epitaph.status"] == "INVALID_FRAME")

        try await server.close()
        try await group.shutdownGracefully()
        unlink(path)
    }
}
