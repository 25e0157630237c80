public import ArgumentParser
public import EndpointMux
import LegacyAdapters
#if canImport(Glibc)
import Glibc
#endif

@main
struct MuxCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muxctl",
        abstract: "Serve, probe and talk to EndpointMux endpoints (running-process v1 wire, JSON-FD control).",
        subcommands: [Serve.self, Probe.self, Send.self, Control.self, Demo.self])
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
