import ArgumentParser
@_spi(Internals) import EndpointMux
import LegacyAdapters
import Glibc

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Run an echo service (reply = \"echo:\" + payload; JSON-FD control methods echo, readFds, createFds, stats) on the running-process service endpoint."
    )

    @Option(help: "Service name ([a-z0-9-]{1,64}).") var name: String
    @Option(help: "Service version (informational; not part of any path).") var version: String = "0.0.0"
    @Option(help: "Payload protocol served, e.g. 0x7A63.") var lane: PayloadProtocol
    @Option(name: .customLong("runtime-dir"), help: "Runtime directory (identity file; its FNV-1a tags the socket).")
    var runtimeDirectory: String?
    @Option(
        name: .customLong("idle-timeout-ms"), help: "Close connections idle this long, in ms (0 = never; the default).")
    var idleTimeoutMilliseconds: Int = 0
    @Option(
        name: .customLong("partial-timeout-ms"),
        help: "Close connections holding an incomplete message this long, in ms (0 = never; default 30000).")
    var partialTimeoutMilliseconds: Int = 30_000

    func run() throws {
        guard lane.isServiceLane else {
            throw ValidationError(EndpointMuxError.invalidServiceLane(lane).description)
        }
        let endpoint = try serviceEndpoint(name: name, runtimeDirectory: runtimeDirectory)
        // Block the signals before any thread exists so only `sigwait` below sees them.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        var options = ConnectionOptions()
        options.idleTimeout = idleTimeoutMilliseconds > 0 ? .milliseconds(idleTimeoutMilliseconds) : nil
        options.partialMessageTimeout = partialTimeoutMilliseconds > 0 ? .milliseconds(partialTimeoutMilliseconds) : nil
        // Echoes of multi-MiB frames: keep big buffers in the heap rather than faulting in
        // fresh pages for each (see AllocatorTuning; process-wide, so the daemon's choice).
        AllocatorTuning.keepLargeBuffers()
        let server = try ServiceServer(
            name: name, socketPath: endpoint.socketPath, identityPath: endpoint.identityPath,
            servedProtocols: [lane], options: options,
            controlHandler: { received, context in EchoControlMethods.handle(received, context: context) }
        ) { frame in Self.echo(frame.payload) }
        print("muxctl serve: \(name) \(version) on lane \(lane), pid \(getpid())")
        print("socket: \(endpoint.socketPath)")
        print("identity: \(endpoint.identityPath)")
        fflush(nil)
        var received: Int32 = 0
        sigwait(&signals, &received)
        server.stop()
        print("muxctl serve: stopped on signal \(received)")
    }
}

extension Serve {
    /// `echo:` + `payload`, built in one allocation and one copy (this runs once per request).
    static func echo(_ payload: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 5 + payload.count) { buffer, count in
            buffer[0] = 0x65  // e
            buffer[1] = 0x63  // c
            buffer[2] = 0x68  // h
            buffer[3] = 0x6F  // o
            buffer[4] = 0x3A  // :
            _ = UnsafeMutableBufferPointer(rebasing: buffer[5...]).initialize(from: payload)
            count = 5 + payload.count
        }
    }
}
