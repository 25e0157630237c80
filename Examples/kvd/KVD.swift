import ArgumentParser
import EndpointMux
import LegacyAdapters
import Glibc

/// kvd: a key-value daemon with a line protocol older than EndpointMux, retrofitted to
/// also answer identity probes, serve its commands as v1 frames on lane 0xF0B7, and
/// accept `dumpTo` / `loadFrom` control messages that pass a file descriptor — on the
/// same socket, with legacy clients seeing exactly what they saw before.
@main
struct KVD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvd", abstract: "A legacy line-protocol key-value daemon, retrofitted with EndpointMux.")

    /// kvd's v1 lane (private use).
    static let lane: PayloadProtocol = 0xF0B7

    enum Adapter: String, ExpressibleByArgument { case posix, nio }

    @Option(help: "Unix socket path to listen on.") var socket: String
    @Option(help: "posix (kvd's own poll loop with a ConnectionDriver) or nio (a SwiftNIO pipeline).") var adapter:
        Adapter = .posix
    @Flag(name: .customLong("no-mux"), help: "Run the original daemon without EndpointMux (for comparison).")
    var noMux = false
    @Option(name: .customLong("identity-file"), help: "Write the identity file here (optional).") var identityFile:
        String?
    @Option(
        name: .customLong("idle-timeout-ms"),
        help:
            "Close a silent connection holding no partial message after this long, with a TIMED_OUT epitaph (0 = off, the default)."
    )
    var idleTimeoutMS: Int?
    @Option(
        name: .customLong("partial-timeout-ms"),
        help:
            "Close a connection whose buffered bytes stay an incomplete message this long, with a TIMED_OUT epitaph (0 = off; default 30000)."
    )
    var partialTimeoutMS: Int?

    func validate() throws {
        for (name, value) in [("--idle-timeout-ms", idleTimeoutMS), ("--partial-timeout-ms", partialTimeoutMS)] {
            if let value, value < 0 {
                throw ValidationError("\(name) must be 0 (off) or a positive number of milliseconds")
            }
        }
    }

    /// A flag's timeout: absent → the engine's default, 0 → off.
    static func timeout(milliseconds: Int?, default fallback: Duration?) -> Duration? {
        guard let milliseconds else { return fallback }
        return milliseconds > 0 ? .milliseconds(milliseconds) : nil
    }

    func run() throws {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        // A `dumpTo` into a pipe whose reader left gets EPIPE (and an error answer), not a signal.
        signal(SIGPIPE, SIG_IGN)
        let defaults = ConnectionOptions()
        let idleTimeout = Self.timeout(milliseconds: idleTimeoutMS, default: defaults.idleTimeout)
        let partialTimeout = Self.timeout(milliseconds: partialTimeoutMS, default: defaults.partialMessageTimeout)

        let mux: EndpointMux?
        if noMux {
            mux = nil
        } else {
            let identity = try DaemonIdentity.current(endpoint: IPCEndpoint(namespaceID: "kvd", path: socket))
            mux = EndpointMux(identity: identity, servedProtocols: [Self.lane], legacyDetector: .lineBased())
        }
        let store = KVStore()
        let stop: () -> Void
        switch adapter {
        case .posix:
            let listener = try listen(on: socket)
            var wake: [Int32] = [-1, -1]
            guard pipe(&wake) == 0 else { throw ValidationError("pipe failed") }
            let options = Connection.options(idleTimeout: idleTimeout, partialMessageTimeout: partialTimeout)
            let loop = KVLoop(listener: listener, store: store, mux: mux, options: options, wakeReader: wake[0])
            let thread = Thread { loop.run() }
            stop = {
                var byte: UInt8 = 1
                _ = write(wake[1], &byte, 1)
                thread.join()
                close(listener)
            }
        case .nio:
            stop = try KVNIO.start(
                socket: socket, store: store, mux: mux,
                idleTimeout: idleTimeout, partialMessageTimeout: partialTimeout)
        }
        if let identityFile, let mux { try IdentityFile.write(mux.identity, to: identityFile) }
        print("kvd: listening on \(socket) (adapter \(adapter.rawValue)\(noMux ? ", no mux" : ""), pid \(getpid()))")
        fflush(nil)
        var received: Int32 = 0
        sigwait(&signals, &received)
        stop()
        if let identityFile { IdentityFile.remove(at: identityFile) }
        unlink(socket)
    }

    /// kvd's own socket setup (it owns its socket; EndpointMux never touches this).
    func listen(on path: String) throws -> Int32 {
        unlink(path)
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ValidationError("socket failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw ValidationError("socket path too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, Glibc.listen(fd, 128) == 0 else {
            throw ValidationError("bind/listen \(path): errno \(errno)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }
}

/// A joinable thread for kvd's loop.
final class Thread: @unchecked Sendable {
    private var handle = pthread_t()
    private final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }

    init(_ body: @escaping () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        pthread_create(
            &handle, nil,
            { argument in
                guard let argument else { return nil }
                Unmanaged<Box>.fromOpaque(argument).takeRetainedValue().body()
                return nil
            }, box)
    }

    func join() { pthread_join(handle, nil) }
}
