import Glibc

/// A server under test: its process and the socket it listens on.
struct RunningServer {
    let process: ServerProcess
    let socketPath: String
}

/// The servers of one run, started on first use and stopped at the end (or killed with
/// the run: every child has PR_SET_PDEATHSIG).
final class Servers {
    /// Where `muxctl` and `kvd` (release builds of the main package) are.
    let binaryDirectory: String
    /// This executable, re-executed as the C baseline server.
    let selfExecutable: String
    /// The run's private directory: sockets, runtime dir, logs.
    let directory: String
    private var started: [String: RunningServer] = [:]
    private var all: [ServerProcess] = []
    private var sequence = 0

    init(binaryDirectory: String, selfExecutable: String, directory: String) {
        self.binaryDirectory = binaryDirectory
        self.selfExecutable = selfExecutable
        self.directory = directory
    }

    /// `muxctl serve --name NAME --lane 0x7A63 --runtime-dir DIR` (its ServiceServer):
    /// the echo service, reply = RESPONSE frame with payload "echo:" + request payload.
    func muxctlServe(fresh: Bool = false) throws -> RunningServer {
        try cached("muxctl-serve", fresh: fresh) { label in
            let process = try ServerProcess(
                label: label, executable: binaryDirectory + "/muxctl",
                arguments: ["serve", "--name", label, "--lane", "0x7A63", "--runtime-dir", directory + "/runtime"],
                logPath: "\(directory)/\(label).log")
            all.append(process)
            let log = try process.waitForLog { $0.contains("\nidentity: ") }  // printed after the socket line
            guard let line = log.split(separator: "\n").first(where: { $0.hasPrefix("socket: ") }) else {
                throw LoadError("\(label): no socket line in \(log)")
            }
            let path = String(line.dropFirst("socket: ".count))
            try waitUntilConnectable(path, process)
            return RunningServer(process: process, socketPath: path)
        }
    }

    /// `kvd --socket PATH` (with EndpointMux) or `kvd --socket PATH --no-mux` (the original).
    func kvd(noMux: Bool) throws -> RunningServer {
        try cached(noMux ? "kvd-no-mux" : "kvd-mux", fresh: false) { label in
            let path = "\(directory)/\(label).sock"
            let process = try ServerProcess(
                label: label, executable: binaryDirectory + "/kvd",
                arguments: ["--socket", path] + (noMux ? ["--no-mux"] : []),
                logPath: "\(directory)/\(label).log")
            all.append(process)
            _ = try process.waitForLog { $0.contains("kvd: listening on") }
            try waitUntilConnectable(path, process)
            try Workloads.populateKVD(path)
            return RunningServer(process: process, socketPath: path)
        }
    }

    /// The same-run baseline: this executable re-run as the C epoll echo server.
    func cEcho(lines: Bool, fresh: Bool = false) throws -> RunningServer {
        try cached(lines ? "c-echo-lines" : "c-echo-frames", fresh: fresh) { label in
            let path = "\(directory)/\(label).sock"
            let process = try ServerProcess(
                label: label, executable: selfExecutable,
                arguments: ["--c-echo-server", lines ? "lines" : "frames", path],
                logPath: "\(directory)/\(label).log")
            all.append(process)
            try waitUntilConnectable(path, process)
            return RunningServer(process: process, socketPath: path)
        }
    }

    /// Stops every server this run started (SIGTERM, bounded wait, SIGKILL).
    func stopAll() {
        all.forEach { $0.stop() }
        all.removeAll()
        started.removeAll()
    }

    private func cached(_ key: String, fresh: Bool, start: (String) throws -> RunningServer) throws -> RunningServer {
        if !fresh, let server = started[key], !server.process.hasExited { return server }
        sequence += 1
        let server = try start(fresh ? "\(key)-\(sequence)" : key)
        if !fresh { started[key] = server }
        return server
    }

    private func waitUntilConnectable(_ path: String, _ process: ServerProcess) throws {
        let deadline = Clock.now() + 30_000_000_000
        while Clock.now() < deadline {
            if let fd = try? UnixSocket.connect(path, timeoutMilliseconds: 1000) {
                close(fd)
                return
            }
            if process.hasExited { throw LoadError("\(process.label) exited: \(process.log())") }
            Clock.sleep(milliseconds: 10)
        }
        throw LoadError("\(process.label): \(path) not connectable after 30 s: \(process.log())")
    }
}

/// The traffic of each case.
enum Workloads {
    static let echoLane: UInt32 = 0x7A63
    static let kvdLane: UInt32 = 0xF0B7
    /// The figure: a 20-byte payload.
    static let smallPayload = Array("0123456789abcdefghij".utf8)
    /// The largest payload whose "echo:" reply still fits the default 16 MiB body cap.
    static let bigPayloadByteCount = 16 * 1024 * 1024 - 64
    static let kvdKey = "bench"
    static let kvdValue = "0123456789abcdef"

    private static func frames(lane: UInt32, payload: [UInt8], count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for index in 0..<count {
            bytes += V1.frame(kind: V1.request, lane: lane, payload: payload, requestID: UInt64(index + 1))
        }
        return bytes
    }

    /// v1 echo of `payload` through `muxctl serve`: RESPONSE, same id, payload "echo:" + payload.
    static func muxEcho(_ server: RunningServer, payload: [UInt8]) -> Workload {
        Workload(
            server: "muxctl serve", socketPath: server.socketPath,
            makeBatch: { frames(lane: echoLane, payload: payload, count: $0) },
            probeRequest: V1.frame(kind: V1.request, lane: echoLane, payload: payload, requestID: 1),
            probeReply: V1.frame(
                kind: V1.response, lane: echoLane, payload: Array("echo:".utf8) + payload, requestID: 1),
            framing: .v1Frames, pid: server.process.pid)
    }

    /// The same frames through the C epoll echo (whole frames back unchanged).
    static func cFrameEcho(_ server: RunningServer, payload: [UInt8]) -> Workload {
        let request = V1.frame(kind: V1.request, lane: echoLane, payload: payload, requestID: 1)
        return Workload(
            server: "C epoll echo (frames)", socketPath: server.socketPath,
            makeBatch: { frames(lane: echoLane, payload: payload, count: $0) },
            probeRequest: request, probeReply: request, framing: .v1Frames, pid: server.process.pid)
    }

    /// `GET bench\n` lines to kvd (mux or not): `VALUE 0123456789abcdef\n`.
    static func kvdLegacy(_ server: RunningServer, label: String) -> Workload {
        let line = Array("GET \(kvdKey)\n".utf8)
        return Workload(
            server: label, socketPath: server.socketPath,
            makeBatch: { count in Array([[UInt8]](repeating: line, count: count).joined()) },
            probeRequest: line, probeReply: Array("VALUE \(kvdValue)\n".utf8), framing: .lines, pid: server.process.pid)
    }

    /// `GET bench` as v1 frames on kvd's lane 0xF0B7: RESPONSE `VALUE 0123456789abcdef`.
    static func kvdFrames(_ server: RunningServer) -> Workload {
        let command = Array("GET \(kvdKey)".utf8)
        return Workload(
            server: "kvd (frames)", socketPath: server.socketPath,
            makeBatch: { frames(lane: kvdLane, payload: command, count: $0) },
            probeRequest: V1.frame(kind: V1.request, lane: kvdLane, payload: command, requestID: 1),
            probeReply: V1.frame(
                kind: V1.response, lane: kvdLane, payload: Array("VALUE \(kvdValue)".utf8), requestID: 1),
            framing: .v1Frames, pid: server.process.pid)
    }

    /// The same lines through the C epoll line echo (each line back unchanged).
    static func cLineEcho(_ server: RunningServer) -> Workload {
        let line = Array("GET \(kvdKey)\n".utf8)
        return Workload(
            server: "C epoll echo (lines)", socketPath: server.socketPath,
            makeBatch: { count in Array([[UInt8]](repeating: line, count: count).joined()) },
            probeRequest: line, probeReply: line, framing: .lines, pid: server.process.pid)
    }

    /// Stores the key every kvd case reads.
    static func populateKVD(_ path: String) throws {
        let fd = try UnixSocket.connect(path)
        defer { close(fd) }
        try Array("SET \(kvdKey) \(kvdValue)\n".utf8).withUnsafeBytes { try UnixSocket.writeAll(fd, $0) }
        let reply = try UnixSocket.readExactly(fd, count: 3)
        guard reply == Array("OK\n".utf8) else {
            throw LoadError("kvd answered SET with \(LoadGenerator.preview(reply))")
        }
    }
}
