public import ArgumentParser
@_spi(Internals) public import EndpointMux
import LegacyAdapters
import Glibc

@main
struct MuxCtl: ParsableCommand {
    /// muxctl's version, the SDK's (see CHANGELOG.md).
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "muxctl",
        abstract: "Serve, probe and talk to EndpointMux endpoints (running-process v1 wire, JSON-FD control).",
        discussion: MuxctlExit.summary,
        version: version,
        subcommands: [Serve.self, Probe.self, Send.self, Control.self, Demo.self, BrokerCommand.self])
}

/// muxctl's exit statuses (documented in `--help` and the README; part of the SemVer API).
enum MuxctlExit {
    /// Success: the identity verified, the reply or the JSON-RPC result arrived.
    static let ok: Int32 = 0
    /// The answer arrived but failed: identity not verified, or an answer that is not a
    /// valid frame or JSON-RPC response; also local failures (cannot read a file, …).
    static let failed: Int32 = 1
    /// `control`: the server answered with a JSON-RPC error (e.g. -32601 method not found).
    static let errorAnswer: Int32 = 2
    /// The server ended the connection before answering: an epitaph, or EOF without one.
    static let closed: Int32 = 3
    /// No answer in time or no connection: connect failed or timed out, or the deadline passed.
    static let unreachable: Int32 = 4
    /// The command line is wrong (ArgumentParser's EX_USAGE).
    static let usage: Int32 = 64

    static let summary = """
        Exit status: 0 success; 1 answer failed (identity not verified, malformed answer, \
        local error); 2 JSON-RPC error answer (control); 3 server closed the connection \
        (epitaph or EOF); 4 connect failed or timed out, or no answer before --timeout; \
        64 usage error.
        """

    /// The status for a client failure.
    static func code(for error: EndpointMuxError) -> Int32 {
        switch error.code {
        case .connectFailed, .timedOut: return unreachable
        case .epitaph, .peerClosed: return closed
        case .systemCallFailed where error.errno == ECONNRESET || error.errno == EPIPE: return closed
        default: return failed
        }
    }
}

/// Lanes given as `0x7A63` or `31331`.
extension PayloadProtocol: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

/// The service endpoint for `name` under this process's environment.
func serviceEndpoint(name: String, runtimeDirectory: String?) throws -> ServiceEndpoint {
    func env(_ key: String) -> String? { getenv(key).map { String(cString: $0) } }
    let environment = ServiceEndpoint.Environment(
        xdgRuntimeDir: env("XDG_RUNTIME_DIR"), xdgDataHome: env("XDG_DATA_HOME"), home: env("HOME"), uid: getuid())
    do {
        return try ServiceEndpoint(name: name, runtimeDirectory: runtimeDirectory, environment: environment)
    } catch {
        throw ValidationError(error.description)
    }
}

/// Prints to standard error.
func printError(_ text: String) {
    let line = Array((text + "\n").utf8)
    line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}
