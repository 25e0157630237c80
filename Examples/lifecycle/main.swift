// A ServiceServer run by a swift-service-lifecycle ServiceGroup: SIGTERM stops accepting,
// sends every connected client an UNAVAILABLE epitaph, drains, and exits 0.
//
//     lifecycle-example SOCKET_PATH [DRAIN_MS]
//
// Serves REQUEST frames on lane 0x7A63 (echo) and logs to standard error.
import EndpointMux
import EndpointMuxServiceLifecycle
import Glibc
import LegacyAdapters
import Logging
import ServiceLifecycle

let arguments = CommandLine.arguments
guard arguments.count >= 2, let drainMilliseconds = Int(arguments.count > 2 ? arguments[2] : "1000") else {
    let usage = Array("usage: lifecycle-example SOCKET_PATH [DRAIN_MS]\n".utf8)
    _ = write(2, usage, usage.count)
    exit(2)
}
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .debug
    return handler
}
let logger = Logger(label: "lifecycle-example")
let server = try ServiceServer(
    name: "lifecycle-example", socketPath: arguments[1], identityPath: nil,
    servedProtocols: [0x7A63], logger: logger
) { frame in frame.payload }
let group = ServiceGroup(
    services: [ServiceServerService(server, drainTimeout: .milliseconds(drainMilliseconds))],
    gracefulShutdownSignals: [.sigterm],
    logger: logger)
let ready = Array("ready\n".utf8)
_ = write(1, ready, ready.count)
try await group.run()
logger.notice("stopped")
