import ArgumentParser
@_spi(Internals) import EndpointMux
import LegacyAdapters
import Glibc

/// `muxctl demo`: starts kvd (a legacy line-protocol daemon retrofitted with EndpointMux)
/// on a temporary socket and talks to it as four different clients on the same socket.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Start kvd and show a legacy session, a verified probe, framed requests and an fd-passing control message.")

    @Option(help: "The kvd executable (default: next to muxctl).") var kvd: String?
    @Option(help: "kvd's adapter: posix or nio.") var adapter: String = "posix"

    func run() throws {
        let directory = "/tmp/muxctl-demo-\(getpid())"
        mkdir(directory, 0o700)
        defer { rmdir(directory) }
        let socketPath = directory + "/kvd.sock"
        let executable = kvd ?? siblingExecutable("kvd")
        var steps = DemoSteps()

        print("== starting kvd: \(executable) --socket \(socketPath) --adapter \(adapter)")
        fflush(nil)
        let daemon = try ChildProcess(executable, ["--socket", socketPath, "--adapter", adapter])
        defer { daemon.stop() }
        guard waitForSocket(socketPath) else {
            printError("demo: kvd did not start")
            throw ExitCode(1)
        }

        print("\n== client 1: a legacy client speaking kvd's old line protocol")
        let legacy = legacySession(socketPath, ["SET greeting hello, world", "GET greeting", "GET missing", "BOGUS"])
        steps.check(
            "legacy session is answered exactly as before",
            legacy == ["OK", "VALUE hello, world", "NOT_FOUND", "ERROR unknown command BOGUS"])

        print("\n== client 2: a supervisor probes the endpoint and verifies who serves it")
        do {
            let verified = try ProbeClient.probe(socketPath: socketPath)
            let identity = verified.identity
            print("  <- pid \(identity.pid) (SO_PEERCRED \(verified.peerProcessID)), exe \(identity.executablePath)")
            print("     blake3 \(identity.executableHashHex.prefix(16))…, boot \(identity.bootID)")
            steps.check(
                "identity verified: nonce, request id, pid = SO_PEERCRED, exe path and BLAKE3",
                identity.pid == UInt32(daemon.pid))
        } catch {
            print("  !! \(error)")
            steps.check("identity verified", false)
        }

        print("\n== client 3: a new client sends kvd's commands as v1 frames on lane 0xF0B7")
        do {
            let client = try FrameClient(socketPath: socketPath)
            var replies: [String] = []
            for command in ["SET lang swift", "GET lang", "GET greeting"] {
                let reply = try client.request(lane: 0xF0B7, payload: Array(command.utf8))
                let text = String(decoding: reply.payload, as: UTF8.self)
                print("  -> [frame rid \(reply.requestID)] \(command)\n  <- [frame rid \(reply.requestID)] \(text)")
                replies.append(text)
            }
            steps.check(
                "framed requests served, sharing state with legacy clients",
                replies == ["OK", "VALUE swift", "VALUE hello, world"])
        } catch {
            print("  !! \(error)")
            steps.check("framed requests served", false)
        }

        print("\n== client 4: a control client passes a file descriptor (SCM_RIGHTS) for kvd to dump into")
        do {
            let path = directory + "/dump.txt"
            let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            defer { unlink(path) }
            guard fd >= 0 else { throw ValidationError("cannot create \(path)") }
            defer { close(fd) }
            let dup = dup(fd)
            guard dup >= 0 else { throw ValidationError("dup failed") }
            var descriptors = FileDescriptorQueue()
            descriptors.append(OwnedFileDescriptor(taking: dup))
            let client = try ControlClient(socketPath: socketPath)
            print("  -> {\"jsonrpc\":\"2.0\",\"method\":\"dumpTo\",\"id\":1,\"fds\":1} + fd \(dup)")
            let reply = try client.call("dumpTo", fileDescriptors: descriptors)
            print("  <- \(String(decoding: ControlMessage.response(reply.response).encoded(), as: UTF8.self))")
            let dumped = String(decoding: readToEnd(fd), as: UTF8.self)
            if adapter == "nio" {
                // SwiftNIO cannot receive fds: the message is refused, never silently stripped.
                let refused: Bool
                if case let .error(error) = reply.response.outcome {
                    refused = error.code == -32050
                } else {
                    refused = false
                }
                steps.check(
                    "SwiftNIO refuses an fd it cannot receive (-32050, then an epitaph)", refused && dumped.isEmpty)
            } else {
                for line in dumped.split(separator: "\n") { print("     file: \(line)") }
                steps.check("control message with an fd handled", dumped == "greeting=hello, world\nlang=swift\n")
            }
        } catch {
            print("  !! \(error)")
            steps.check("control message with an fd handled", false)
        }

        print("\n== and a broken client: a frame on a lane kvd does not serve gets an epitaph, then EOF")
        do {
            let client = try FrameClient(socketPath: socketPath)
            _ = try client.request(lane: 0x7001, payload: Array("hi".utf8), timeout: .seconds(2))
            steps.check("epitaph before close", false)
        } catch let error where error.epitaph != nil {
            let epitaph = error.epitaph ?? Epitaph(status: .internal, reason: error.reason)
            print("  <- epitaph \(epitaph.status) (\(epitaph.status.rawValue)): \(epitaph.reason)")
            steps.check("epitaph before close", epitaph.status == .notSupported)
        } catch {
            print("  !! \(error)")
            steps.check("epitaph before close", false)
        }

        print("")
        print("demo: \(steps.passed) of \(steps.total) steps passed")
        if steps.passed != steps.total { throw ExitCode(1) }
    }

    func legacySession(_ socketPath: String, _ commands: [String]) -> [String] {
        guard let socket = try? UnixSocket.connect(to: socketPath) else { return [] }
        var replies: [String] = []
        var buffer: [UInt8] = []
        for command in commands {
            print("  -> \(command)")
            let bytes = Array((command + "\n").utf8)
            _ = bytes.withUnsafeBytes { send(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            while !buffer.contains(0x0A) {
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = chunk.withUnsafeMutableBytes { recv(socket.rawValue, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return replies }
                buffer += chunk[..<n]
            }
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeFirst(newline + 1)
                print("  <- \(line)")
                replies.append(line)
            }
        }
        return replies
    }
}

struct DemoSteps {
    var passed = 0
    var total = 0
    mutating func check(_ name: String, _ ok: Bool) {
        total += 1
        if ok { passed += 1 }
        print("  [\(ok ? "ok" : "FAILED")] \(name)")
    }
}

/// An executable in the same directory as this one.
func siblingExecutable(_ name: String) -> String {
    guard let path = try? ProcessFacts.executablePath(of: getpid()), let slash = path.lastIndex(of: "/") else {
        return name
    }
    return String(path[..<slash]) + "/" + name
}

func waitForSocket(_ path: String, timeout: Duration = .seconds(30)) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? UnixSocket.connect(to: path)) != nil { return true }
        usleep(20_000)
    }
    return false
}

/// A child process started with posix_spawn and stopped with SIGTERM.
final class ChildProcess {
    let pid: pid_t

    init(_ executable: String, _ arguments: [String]) throws {
        var pid: pid_t = 0
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let result = posix_spawn(&pid, executable, nil, nil, argv, environ)
        guard result == 0 else {
            throw ValidationError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}
