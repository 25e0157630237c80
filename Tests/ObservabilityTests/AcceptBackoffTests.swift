@_spi(Internals) import EndpointMux
import Glibc
@testable import LegacyAdapters
import Logging
import MetricsTestKit
import Testing

/// Out of fds, `accept` backs off; the refusal is logged at `notice` and counted, and the
/// waiting client is served once fds are available again.
@Suite(.serialized) struct AcceptBackoffTests {
    @Test(.timeLimit(.minutes(1)))
    func emfileIsLoggedAndCountedAndTheClientIsServedAfterTheBackoff() async throws {
        let metrics = SharedMetrics.backend
        let capture = LogCapture()
        let name = "obs-emfile-\(UInt32.random(in: 0...UInt32.max))"
        let path = temporarySocketPath("emfile")
        let server = try ServiceServer(
            name: name, socketPath: path, identityPath: nil, servedProtocols: [0x7A63],
            logger: capture.logger()
        ) { $0.payload }
        defer { server.stop() }
        let service = [("service", name)]
        let refused = {
            metrics.counterTotal(
                label: "endpointmux_accepts_refused_total",
                dimensions: service + [("reason", "out_of_resources")])
        }

        try await Task.sleep(for: .milliseconds(1))  // the runtime's timer machinery exists before the window
        // No fd left for accept(2): the soft limit at the lowest free fd number.
        var saved = rlimit()
        #expect(getrlimit(RLIMIT_NOFILE_VALUE, &saved) == 0)
        let socket = try UnixSocket.makeSocket().release()  // before the limit: connect needs no new fd
        let client = RawClient(taking: socket)
        var tight = saved
        tight.rlim_cur = rlim_t(lowestFreeDescriptor(copying: socket))  // every lower number is in use
        #expect(setrlimit(RLIMIT_NOFILE_VALUE, &tight) == 0)
        #expect(client.connect(to: path))  // completes into the backlog; accept(2) has no fd left
        // Waited for on this thread, without the concurrency runtime's timers: nothing in
        // this process may need a new fd until the limit is restored (the loop thread's
        // accept(2) is what should fail), and the window lasts one accept attempt.
        var sawRefusal = false
        for _ in 0..<2000 where !sawRefusal {
            usleep(1000)
            sawRefusal = refused() >= 1
        }
        var restored = saved
        #expect(setrlimit(RLIMIT_NOFILE_VALUE, &restored) == 0)
        #expect(sawRefusal)

        client.write(try ProbeRequest.random().frame.encoded())
        #expect(client.readFrame()?.payloadProtocol == 0xB232, "served after the back-off")
        let entry = capture.all.first { $0.message.hasPrefix("accept paused") }
        #expect(entry?.level == .notice)
        #expect(entry?.metadata["errno"] == "\(EMFILE)")
    }
}

/// The lowest fd number not in use (every lower one is).
private func lowestFreeDescriptor(copying open: Int32) -> Int32 {
    let fd = fcntl(open, F_DUPFD, 0)
    if fd >= 0 { close(fd) }
    return fd
}

/// `RLIMIT_NOFILE` as `getrlimit`/`setrlimit` take it on glibc.
private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
