import ArgumentParser
@_spi(Internals) import EndpointMux
import LegacyAdapters
import Glibc

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Probe an endpoint and verify its identity; exit 0 only when it verifies.",
        discussion: MuxctlExit.summary)

    @Option(help: "Service name: probe its running-process endpoint and verify against its identity file.")
    var name: String?
    @Option(name: .customLong("runtime-dir"), help: "Runtime directory used with --name.") var runtimeDirectory: String?
    @Option(help: "Socket path to probe.") var socket: String?
    @Option(help: "Identity file to verify against (with --socket).") var identity: String?
    @Flag(help: "Print the verified identity as JSON.") var json = false
    @Option(help: "Deadline for connect, write and read, in milliseconds.") var timeout: Int = 1000

    func validate() throws {
        guard (name == nil) != (socket == nil) else { throw ValidationError("give exactly one of --name or --socket") }
        if name != nil, identity != nil { throw ValidationError("--identity goes with --socket") }
        if name == nil, runtimeDirectory != nil { throw ValidationError("--runtime-dir goes with --name") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let socketPath: String
        var expected: DaemonIdentity?
        do {
            if let name {
                let endpoint = try serviceEndpoint(name: name, runtimeDirectory: runtimeDirectory)
                socketPath = endpoint.socketPath
                expected = try IdentityFile.read(from: endpoint.identityPath)
            } else {
                socketPath = socket ?? ""
                if let identity { expected = try IdentityFile.read(from: identity) }
            }
            let verified = try ProbeClient.probe(
                socketPath: socketPath, expected: expected, timeout: .milliseconds(timeout))
            report(verified, socketPath: socketPath, againstFile: expected != nil)
        } catch let error as ValidationError {
            throw error
        } catch let error as EndpointMuxError {
            printError("muxctl probe: NOT verified: \(error)")
            throw ExitCode(MuxctlExit.code(for: error))
        } catch {
            printError("muxctl probe: NOT verified: \(error)")
            throw ExitCode(MuxctlExit.failed)
        }
    }

    func report(_ verified: VerifiedIdentity, socketPath: String, againstFile: Bool) {
        let identity = verified.identity
        let hash = identity.executableHashHex
        let microseconds =
            verified.roundTrip.components.seconds * 1_000_000 + verified.roundTrip.components.attoseconds
            / 1_000_000_000_000
        if json {
            let value: JSONValue = [
                "verified": true,
                "socket": .string(socketPath),
                "checked_against": .string(againstFile ? "identity-file" : "peer-credentials"),
                "pid": .number(JSONNumber(UInt64(identity.pid))),
                "peer_pid": .number(JSONNumber(Int(verified.peerProcessID))),
                "exe_path": .string(identity.executablePath),
                "exe_hash_algorithm": .string(identity.executableHashAlgorithm),
                "exe_hash": .string(hash),
                "boot_id": .string(identity.bootID),
                "ipc_endpoint": [
                    "namespace_id": .string(identity.endpoint.namespaceID), "path": .string(identity.endpoint.path),
                ],
                "started_at_unix_ms": .number(JSONNumber(identity.startedAtUnixMilliseconds)),
                "round_trip_us": .number(JSONNumber(Int(microseconds))),
            ]
            print(value.jsonText)
        } else {
            print("verified: pid \(identity.pid) (SO_PEERCRED \(verified.peerProcessID)) at \(socketPath)")
            print("  exe: \(identity.executablePath)")
            print("  blake3: \(hash)")
            print("  boot: \(identity.bootID)")
            print("  endpoint: \(identity.endpoint.namespaceID) \(identity.endpoint.path)")
            print("  checked against: \(againstFile ? "identity file" : "peer credentials and /proc")")
            print("  round trip: \(microseconds) µs")
        }
    }
}
