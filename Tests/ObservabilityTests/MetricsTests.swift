import CoreMetrics
@_spi(Internals) import EndpointMux
import Glibc
@testable import LegacyAdapters
import MetricsTestKit
import Testing

/// swift-metrics through the in-memory backend: a scripted session over real unix sockets
/// against a `ServiceServer`, counted exactly.
@Suite(.serialized) struct MetricsTests {
    static let lane: PayloadProtocol = 0x7A63

    @Test(.timeLimit(.minutes(1)))
    func aScriptedSessionIsCountedExactly() async throws {
        let metrics = SharedMetrics.backend  // bootstrapped before the server creates its metrics
        let name = "obs-metrics-\(UInt32.random(in: 0...UInt32.max))"
        let service = [("service", name)]
        let path = temporarySocketPath("metrics")
        let server = try ServiceServer(
            name: name, socketPath: path, identityPath: nil, servedProtocols: [Self.lane],
            controlHandler: { received, _ in
                guard case let .request(request) = received.message else { return nil }
                // Echoes the fds it was passed.
                return OutgoingControlMessage(
                    replyingTo: request, result: .number(JSONNumber(received.fileDescriptorCount)),
                    fileDescriptors: received.takeFileDescriptors())
            }
        ) { frame in frame.payload }
        defer { server.stop() }

        // 1: two probes and three frames on the lane in one write, then the peer closes.
        do {
            let client = try RawClient(path: path)
            var bytes: [UInt8] = []
            for _ in 0..<2 { bytes += try ProbeRequest.random().frame.encoded() }
            for id in 1...3 {
                bytes += try Frame(
                    kind: .request, payloadProtocol: Self.lane, payload: Array("x\(id)".utf8),
                    requestID: UInt64(id)
                ).encoded()
            }
            client.write(bytes)
            var answers: [Frame] = []
            for _ in 0..<5 { if let frame = client.readFrame() { answers.append(frame) } }
            #expect(answers.count == 5)
            #expect(answers.filter { $0.payloadProtocol == Self.lane }.map(\.requestID) == [1, 2, 3])
        }
        // 2: one control request carrying two fds, answered with them.
        do {
            var pipeEnds: [Int32] = [0, 0]
            #expect(pipe(&pipeEnds) == 0)
            var fds = FileDescriptorQueue()
            fds.append(takingRawValues: pipeEnds)
            let control = try ControlClient(socketPath: path)
            let reply = try await control.call("echo", fileDescriptors: fds, timeout: .seconds(5))
            #expect(reply.fileDescriptorCount == 2)
            var returned = reply.takeFileDescriptors()
            returned.closeAll()
        }
        // 3: garbage: an INVALID_FRAME epitaph, then EOF.
        do {
            let client = try RawClient(path: path)
            client.write([0x02, 0x00, 0x00])
            let epitaph = client.readFrame().flatMap { Epitaph(v1Frame: $0) }
            #expect(epitaph?.status == .invalidFrame)
            #expect(client.readsEndOfFile())
        }

        func total(_ label: String, _ extra: [(String, String)] = []) -> Int64 {
            metrics.counterTotal(label: label, dimensions: service + extra)
        }
        let ended = await eventually { total("endpointmux_connections_ended_total") == 3 }
        #expect(ended)
        #expect(total("endpointmux_connections_total") == 3)
        #expect(total("endpointmux_connections_ended_total", [("reason", "peer_closed")]) == 2)
        #expect(total("endpointmux_connections_ended_total", [("reason", "failed")]) == 1)
        #expect(total("endpointmux_probes_answered_total") == 2)
        #expect(total("endpointmux_frames_received_total", [("lane", "0x7A63")]) == 3)
        #expect(total("endpointmux_frames_received_total") == 3)
        #expect(total("endpointmux_control_messages_received_total", [("kind", "request")]) == 1)
        #expect(total("endpointmux_control_messages_received_total") == 1)
        #expect(total("endpointmux_epitaphs_sent_total", [("status", "INVALID_FRAME")]) == 1)
        #expect(total("endpointmux_epitaphs_sent_total") == 1)
        #expect(total("endpointmux_fds_received_total") == 2)
        #expect(total("endpointmux_fds_sent_total") == 2)
        #expect(total("endpointmux_accepts_refused_total") == 0)
        let open = metrics.meters(label: "endpointmux_connections_open", dimensions: service)
        #expect(open.count == 1)
        #expect(open.first?.lastValue == 0)
        // Each client's close reaches the server after the next one connected, at most.
        #expect(open.first.map { (1...2).contains($0.values.max() ?? 0) } == true)

        // Stopping: a connected client gets UNAVAILABLE (counted), a later one is refused.
        let last = try RawClient(path: path)
        #expect(
            await eventually {
                metrics.meters(label: "endpointmux_connections_open", dimensions: service).first?.lastValue == 1
            })
        await server.shutdown(drainTimeout: .milliseconds(500))
        #expect(last.readFrame().flatMap { Epitaph(v1Frame: $0) }?.status == .unavailable)
        #expect(total("endpointmux_epitaphs_sent_total", [("status", "UNAVAILABLE")]) == 1)
        #expect(total("endpointmux_connections_ended_total", [("reason", "closed_by_daemon")]) == 1)
        #expect(metrics.meters(label: "endpointmux_connections_open", dimensions: service).first?.lastValue == 0)
    }
}
