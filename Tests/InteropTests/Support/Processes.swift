import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux

/// Where the real peers live: the release `muxctl` and the venv with `running-process`
/// that `scripts/test.sh` prepares.
enum Peers {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var muxctl: String {
        ProcessInfo.processInfo.environment["ENDPOINTMUX_MUXCTL"]
            ?? root.appendingPathComponent(".build/release/muxctl").path
    }

    static var python: String {
        ProcessInfo.processInfo.environment["ENDPOINTMUX_PYTHON"]
            ?? root.appendingPathComponent(".venv-interop/bin/python3").path
    }

    static var kvd: String {
        ProcessInfo.processInfo.environment["ENDPOINTMUX_KVD"] ?? root.appendingPathComponent(".build/debug/kvd").path
    }

    static func script(_ name: String) -> String {
        root.appendingPathComponent("Tests/InteropTests/Python/\(name)").path
    }

    /// Fails the test with set-up instructions when a peer is missing.
    static func require() throws {
        for path in [muxctl, python] where !FileManager.default.isExecutableFile(atPath: path) {
            throw PeerMissing(path: path)
        }
    }

    struct PeerMissing: Error, CustomStringConvertible {
        let path: String
        var description: String {
            "\(path) is missing: run scripts/test.sh (it builds muxctl in release and installs running-process)"
        }
    }
}

/// A child process that did not get ready, with what it wrote to standard error.
struct NotStarted: Error, CustomStringConvertible {
    let what: String
    let errors: String
    var description: String { "\(what) did not start: \(errors)" }
}

/// A started `muxctl serve --lane 0x7A63` in a sandbox: started, then waited for until its
/// identity file exists.
struct MuxctlServer {
    let child: Child
    let endpoint: ServiceEndpoint
    var socketPath: String { endpoint.socketPath }
    var pid: Int32 { child.process.processIdentifier }

    /// Starts it as `name`, with `extra` arguments, run through `prefix` (e.g. `prlimit`).
    static func start(
        _ sandbox: Sandbox, name: String, extra: [String] = [], prefix: [String] = []
    ) async throws -> MuxctlServer {
        try Peers.require()
        let endpoint = try sandbox.endpoint(name: name)
        let arguments =
            ["serve", "--name", name, "--lane", "0x7A63", "--runtime-dir", sandbox.runtimeDirectory] + extra
        let child: Child
        if prefix.isEmpty {
            child = try Child(Peers.muxctl, arguments, environment: sandbox.environment, in: sandbox, label: name)
        } else {
            child = try Child(
                prefix[0], Array(prefix.dropFirst()) + [Peers.muxctl] + arguments,
                environment: sandbox.environment, in: sandbox, label: name)
        }
        guard await waitForFile(endpoint.identityPath) else {
            throw NotStarted(what: "muxctl serve \(name) (no identity file)", errors: child.errors)
        }
        return MuxctlServer(child: child, endpoint: endpoint)
    }
}

/// A scratch directory with its own XDG_RUNTIME_DIR, removed at the end.
final class Sandbox {
    let directory: URL
    let runtimeDirectory: String
    let environment: [String: String]

    init() throws {
        directory = URL(fileURLWithPath: "/tmp/emx-\(UInt32.random(in: 0...UInt32.max))")
        let xdg = directory.appendingPathComponent("xdg").path
        runtimeDirectory = directory.appendingPathComponent("rt").path
        try FileManager.default.createDirectory(atPath: xdg, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: runtimeDirectory, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_RUNTIME_DIR"] = xdg
        self.environment = environment
    }

    func endpoint(name: String) throws -> ServiceEndpoint {
        try ServiceEndpoint(
            name: name, runtimeDirectory: runtimeDirectory,
            environment: .init(
                xdgRuntimeDir: environment["XDG_RUNTIME_DIR"], xdgDataHome: nil, home: environment["HOME"],
                uid: getuid()))
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}

/// A child process with its output captured to files.
final class Child {
    let process = Process()
    let stdoutURL: URL
    let stderrURL: URL
    private let stdinPipe = Pipe()

    init(
        _ executable: String, _ arguments: [String], environment: [String: String], in sandbox: Sandbox, label: String
    ) throws {
        stdoutURL = sandbox.directory.appendingPathComponent("\(label).out")
        stderrURL = sandbox.directory.appendingPathComponent("\(label).err")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardInput = stdinPipe
        try process.run()
    }

    var output: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    var errors: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// Closes the child's standard input.
    func closeInput() { try? stdinPipe.fileHandleForWriting.close() }

    /// Waits for exit up to `timeout`; kills the child when it overstays.
    @discardableResult
    func wait(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                process.terminate()
                try? await Task.sleep(for: .milliseconds(200))
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                return nil
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Waits until `path` exists.
func waitForFile(_ path: String, timeout: Duration = .seconds(30)) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !FileManager.default.fileExists(atPath: path) {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return true
}

/// Runs a command to completion and returns its status and output.
func run(
    _ executable: String, _ arguments: [String], environment: [String: String], in sandbox: Sandbox,
    label: String, timeout: Duration = .seconds(60)
) async throws -> (status: Int32?, output: String, errors: String) {
    let child = try Child(executable, arguments, environment: environment, in: sandbox, label: label)
    child.closeInput()
    let status = await child.wait(timeout: timeout)
    return (status, child.output, child.errors)
}
