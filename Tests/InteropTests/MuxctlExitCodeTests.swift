import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux

/// muxctl's documented exit statuses, driven as a user would: the release `muxctl`
/// (`ENDPOINTMUX_MUXCTL`) against `muxctl serve` and against a server that never accepts.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct MuxctlExitCodeTests {
    /// `muxctl --version` prints the SDK version and exits 0.
    @Test func version() async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let result = try await run(
            Peers.muxctl, ["--version"], environment: sandbox.environment, in: sandbox, label: "version")
        #expect(result.status == 0)
        #expect(result.output == "0.1.0\n")
        let help = try await run(
            Peers.muxctl, ["control", "--help"], environment: sandbox.environment, in: sandbox, label: "help")
        #expect(help.status == 0)
        #expect(help.output.contains("2 JSON-RPC error answer"))
    }

    /// `muxctl control` against `muxctl serve`: a result exits 0, an unknown method's
    /// -32601 answer exits 2 (the answer is still printed), a wrong command line 64,
    /// fds are passed in command-line order with their modes, and a missing socket 4.
    @Test func controlExitStatuses() async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let name = "exitcodes\(UInt16.random(in: 0...UInt16.max))"
        let server = try await MuxctlServer.start(sandbox, name: name)
        let endpoint = server.endpoint
        let socket = endpoint.socketPath

        let ok = try await run(
            Peers.muxctl, ["control", "--socket", socket, "echo", "--params", #"{"a":1}"#],
            environment: sandbox.environment, in: sandbox, label: "echo")
        #expect(ok.status == 0, "\(ok.errors)")
        #expect(ok.output.hasPrefix(#"{"jsonrpc":"2.0","result":"#), "\(ok.output)")

        let unknown = try await run(
            Peers.muxctl, ["control", "--socket", socket, "noSuchMethod"],
            environment: sandbox.environment, in: sandbox, label: "unknown")
        #expect(unknown.status == 2, "\(unknown.output) \(unknown.errors)")
        #expect(unknown.output.contains(#""code":-32601"#), "\(unknown.output)")
        #expect(unknown.errors.contains("-32601"), "\(unknown.errors)")

        let usage = try await run(
            Peers.muxctl, ["control", "--socket", socket, "echo", "--params", "{not json"],
            environment: sandbox.environment, in: sandbox, label: "usage")
        #expect(usage.status == 64, "\(usage.errors)")

        // --fd (read), --fd-rw and --fd-write, interleaved: readFds reads them in the order given.
        let first = sandbox.directory.appendingPathComponent("first.txt").path
        let second = sandbox.directory.appendingPathComponent("second.txt").path
        let written = sandbox.directory.appendingPathComponent("written.txt").path
        try "FIRST".write(toFile: first, atomically: true, encoding: .utf8)
        try "SECOND".write(toFile: second, atomically: true, encoding: .utf8)
        try "OLD".write(toFile: written, atomically: true, encoding: .utf8)
        let read = try await run(
            Peers.muxctl,
            [
                "control", "--socket", socket, "readFds", "--fd-rw", second, "--fd", first,
                "--fd-write", written,
            ],
            environment: sandbox.environment, in: sandbox, label: "read")
        #expect(read.status == 0, "\(read.errors)")
        // The write-only fd cannot be read back and was truncated when opened.
        #expect(read.output.contains(#""SECOND","FIRST","#), "\(read.output)")
        #expect((try? String(contentsOfFile: written, encoding: .utf8)) == "")

        // createFds returns fds; --max-fds below their number refuses the answer (exit 1).
        let created = try await run(
            Peers.muxctl,
            [
                "control", "--socket", socket, "createFds", "--params", #"{"count":3,"prefix":"p"}"#,
                "--max-fds", "2",
            ],
            environment: sandbox.environment, in: sandbox, label: "maxfds")
        #expect(created.status == 1, "\(created.output) \(created.errors)")
        let allowed = try await run(
            Peers.muxctl,
            [
                "control", "--socket", socket, "createFds", "--params", #"{"count":3,"prefix":"p"}"#,
                "--max-fds", "3",
            ],
            environment: sandbox.environment, in: sandbox, label: "maxfds-ok")
        #expect(allowed.status == 0, "\(allowed.errors)")
        #expect(allowed.output.contains("fd[2]: p2"), "\(allowed.output)")

        let missing = try await run(
            Peers.muxctl, ["control", "--socket", sandbox.directory.appendingPathComponent("none.sock").path, "echo"],
            environment: sandbox.environment, in: sandbox, label: "missing")
        #expect(missing.status == 4, "\(missing.errors)")

        let probe = try await run(
            Peers.muxctl, ["probe", "--socket", socket, "--timeout", "5000"],
            environment: sandbox.environment, in: sandbox, label: "probe")
        #expect(probe.status == 0, "\(probe.errors)")

        server.child.signal(SIGTERM)
        #expect(await server.child.wait(timeout: .seconds(10)) == 0)
    }

    /// `muxctl probe --timeout 500` (and send, control) against a server whose accept queue
    /// is full and that never accepts: non-zero (4) within 1 s, where a deadline that
    /// covered only the reply would hang in `connect`.
    @Test func probeAgainstANeverAcceptingServerTimesOut() async throws {
        try Peers.require()
        let sandbox = try Sandbox()
        let path = sandbox.directory.appendingPathComponent("full.sock").path
        let listener = try FullListener(path: path)
        defer { listener.close() }

        for (label, arguments) in [
            ("probe", ["probe", "--socket", path, "--timeout", "500"]),
            ("send", ["send", "--socket", path, "--lane", "0x7A63", "--payload", "x", "--timeout", "500"]),
            ("control", ["control", "--socket", path, "echo", "--timeout", "500"]),
        ] {
            let start = ContinuousClock.now
            let result = try await run(
                Peers.muxctl, arguments, environment: sandbox.environment, in: sandbox, label: label,
                timeout: .seconds(10))
            let elapsed = start.duration(to: .now)
            #expect(result.status == 4, "\(label): \(String(describing: result.status)) \(result.errors)")
            #expect(elapsed < .seconds(1), "\(label) took \(elapsed)")
            #expect(result.errors.contains("timed out"), "\(label): \(result.errors)")
        }
    }
}

/// A listening Unix socket with backlog 0 whose queue is filled with connections that
/// are never accepted.
private final class FullListener {
    private var fds: [Int32] = []

    init(path: String) throws {
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw Failure("socket", errno) }
        fds.append(listener)
        guard Self.withAddress(path, { bind(listener, $0, $1) }) == 0 else { throw Failure("bind", errno) }
        guard listen(listener, 0) == 0 else { throw Failure("listen", errno) }
        for _ in 0..<16 {
            let filler = socket(
                AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard filler >= 0 else { throw Failure("socket", errno) }
            fds.append(filler)
            if Self.withAddress(path, { connect(filler, $0, $1) }) != 0 {
                guard errno == EAGAIN else { throw Failure("connect", errno) }
                return  // full
            }
        }
        throw Failure("the accept queue never filled", 0)
    }

    func close() {
        for fd in fds { _ = Foundation.close(fd) }
        fds = []
    }

    deinit { close() }

    private static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8).prefix(107)) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let operation: String
        let code: Int32
        init(_ operation: String, _ code: Int32) { self.operation = operation; self.code = code }
        var description: String { "\(operation): errno \(code)" }
    }
}
