import ArgumentParser
import Dispatch
@_spi(Internals) import EndpointMux
import LegacyAdapters
import Glibc

/// `muxctl broker`: drive a netbroker by hand, one step after another on one connection
/// (listeners live as long as the connection, so a session is one command line).
struct BrokerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Drive a broker (netbroker): listen, accept, connect, close — steps run in order on one connection.",
        discussion: """
            Steps: listen ENDPOINT [BACKLOG] | accept [LISTENER] | connect ENDPOINT|listener:ID|last | \
            close [LISTENER] | load CLIENTS CYCLES. ENDPOINT is tcp:127.0.0.1:0, tcp:[::1]:80, \
            unix:/path or pair; LISTENER defaults to the last one listened on. Each result is \
            printed on one line; a returned socket is shown as its local and peer addresses, then \
            closed (with --echo, first echoed until end of file). `load` runs CLIENTS connections × \
            CYCLES listen/accept/connect/close cycles while probing the broker every 20 ms.

            Example: muxctl broker --socket /tmp/b.sock --echo listen tcp:127.0.0.1:0 accept

            \(MuxctlExit.summary)
            """)

    @Option(help: "The broker's socket path.") var socket: String
    @Option(name: .customLong("timeout-ms"), help: "timeoutMs of connect steps (the broker's default when absent).")
    var timeoutMilliseconds: Int?
    @Flag(help: "Echo what arrives on each returned socket until end of file before closing it.") var echo = false
    @Argument(parsing: .remaining, help: "Steps.") var steps: [String] = []

    enum Step: Sendable {
        case listen(BrokerEndpoint, backlog: Int?)
        case accept(BrokerListenerID?)
        case connect(BrokerConnectTarget)
        case connectLast
        case close(BrokerListenerID?)
        case load(clients: Int, cycles: Int)
    }

    func validate() throws {
        _ = try parsedSteps()
    }

    func parsedSteps() throws -> [Step] {
        var result: [Step] = []
        var words = steps[...]
        func endpoint(_ text: String) throws -> BrokerEndpoint {
            do { return try BrokerEndpoint(text: text) } catch { throw ValidationError("\(text): \(error)") }
        }
        func listenerID(_ text: String) throws -> BrokerListenerID {
            guard let raw = UInt64(text) else { throw ValidationError("\(text) is not a listener id") }
            return BrokerListenerID(raw)
        }
        while let word = words.popFirst() {
            switch word {
            case "listen":
                guard let text = words.popFirst() else { throw ValidationError("listen needs an endpoint") }
                var backlog: Int?
                if let next = words.first, let value = Int(next) {
                    backlog = value
                    words.removeFirst()
                }
                result.append(.listen(try endpoint(text), backlog: backlog))
            case "accept", "close":
                var id: BrokerListenerID?
                if let next = words.first, UInt64(next) != nil {
                    id = try listenerID(next)
                    words.removeFirst()
                }
                result.append(word == "accept" ? .accept(id) : .close(id))
            case "connect":
                guard let text = words.popFirst() else {
                    throw ValidationError("connect needs an endpoint or listener:ID")
                }
                if text == "last" {
                    result.append(.connectLast)
                } else if text.hasPrefix("listener:") {
                    result.append(.connect(.listener(try listenerID(String(text.dropFirst(9))))))
                } else {
                    result.append(.connect(.endpoint(try endpoint(text))))
                }
            case "load":
                guard let clients = words.popFirst().flatMap({ Int($0) }),
                    let cycles = words.popFirst().flatMap({ Int($0) }),
                    clients > 0, cycles > 0
                else { throw ValidationError("load needs CLIENTS and CYCLES (positive)") }
                result.append(.load(clients: clients, cycles: cycles))
            default:
                throw ValidationError("unknown step \"\(word)\" (listen, accept, connect, close, load)")
            }
        }
        guard !result.isEmpty else { throw ValidationError("no steps given") }
        return result
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let steps = try parsedSteps()
        let socket = self.socket, echo = self.echo, timeout = timeoutMilliseconds
        let status = waitForTask {
            await BrokerSession(socket: socket, echo: echo, timeoutMilliseconds: timeout).run(steps)
        }
        if status != MuxctlExit.ok { throw ExitCode(status) }
    }
}

/// Runs `body` on Swift concurrency and waits for it on this (the main) thread.
private func waitForTask(_ body: @escaping @Sendable () async -> Int32) -> Int32 {
    final class Box: @unchecked Sendable { var value: Int32 = 0 }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    Task {
        box.value = await body()
        done.signal()
    }
    done.wait()
    return box.value
}

/// Prints a line at once (stdout may be a pipe the demo reads).
private func say(_ text: String) {
    print(text)
    fflush(nil)
}

private struct BrokerSession: Sendable {
    let socket: String
    let echo: Bool
    let timeoutMilliseconds: Int?

    func run(_ steps: [BrokerCommand.Step]) async -> Int32 {
        let client: BrokerClient
        do { client = try BrokerClient(socketPath: socket) } catch {
            printError("muxctl broker: \(error)")
            return MuxctlExit.code(for: error)
        }
        defer { client.close() }
        var listeners: [BrokerListenerID: BrokerClient.Listener] = [:]
        var last: BrokerListenerID?
        let timeout = timeoutMilliseconds.map { Duration.milliseconds($0) }
        for step in steps {
            do {
                switch step {
                case let .listen(endpoint, backlog):
                    let listener = try await client.listen(endpoint, backlog: backlog)
                    listeners[listener.id] = listener
                    last = listener.id
                    say("listen: listener \(listener.id) endpoint \(listener.endpoint)")
                case let .accept(id):
                    guard let id = id ?? last else {
                        printError("muxctl broker: accept: no listener yet")
                        return MuxctlExit.failed
                    }
                    guard let listener = listeners[id] else {
                        // Not this session's: the broker answers (-32002 UnknownListener).
                        let reply = try await client.call(method: "accept", params: ["listener": id.jsonValue])
                        if case let .error(object) = reply.response.outcome {
                            return report(BrokerError(object).map(EndpointMuxError.broker) ?? .rejected(object))
                        }
                        printError("muxctl broker: accept on listener \(id) answered \(reply.response)")
                        return MuxctlExit.failed
                    }
                    let accepted = try await listener.accept()
                    let peer = accepted.peer
                    finish(accepted.takeSocket(), "accept: listener \(id) peer \(peer)")
                case let .connect(target):
                    let socket: OwnedFileDescriptor
                    switch target {
                    case let .endpoint(endpoint): socket = try await client.connect(endpoint, timeout: timeout)
                    case let .listener(id): socket = try await client.connect(listener: id, timeout: timeout)
                    }
                    finish(socket, "connect: connected")
                case .connectLast:
                    guard let id = last else {
                        printError("muxctl broker: connect last: no listener yet")
                        return MuxctlExit.failed
                    }
                    finish(try await client.connect(listener: id, timeout: timeout), "connect: connected")
                case let .close(id):
                    guard let id = id ?? last else {
                        printError("muxctl broker: close: no listener yet")
                        return MuxctlExit.failed
                    }
                    try await client.close(listener: id)
                    listeners[id] = nil
                    say("close: listener \(id) closed")
                case let .load(clients, cycles):
                    let status = await runLoad(clients: clients, cycles: cycles)
                    if status != MuxctlExit.ok { return status }
                }
            } catch {
                return report(error)
            }
        }
        return MuxctlExit.ok
    }

    /// Prints a returned socket's addresses, echoes if asked, closes it.
    private func finish(_ socket: consuming OwnedFileDescriptor, _ prefix: String) {
        let (local, peer) = BrokerClient.addresses(of: socket.rawValue)
        say("\(prefix) fd local \(local.map(\.description) ?? "?") peer \(peer.map(\.description) ?? "?")")
        if echo {
            let count = echoUntilEnd(socket.rawValue)
            say("echo: \(count) bytes")
        }
        socket.close()
    }

    private func report(_ error: EndpointMuxError) -> Int32 {
        if let object = error.rpcError {
            say("error \(object.code) \(object.data?["name"]?.stringValue ?? ""): \(object.message)")
            return MuxctlExit.errorAnswer
        }
        printError("muxctl broker: \(error.reason)")
        return MuxctlExit.code(for: error)
    }

    /// `load`: clients × cycles of listen, accept + connect (one byte through), close, while a
    /// thread probes the broker every 20 ms.
    private func runLoad(clients: Int, cycles: Int) async -> Int32 {
        let prober = Prober(socket: socket)
        prober.start()
        let start = ContinuousClock.now
        let socket = self.socket
        let completed = await withTaskGroup(of: Result<Int, EndpointMuxError>.self) { group in
            for _ in 0..<clients {
                group.addTask {
                    do {
                        let client: BrokerClient
                        do throws(EndpointMuxError) { client = try BrokerClient(socketPath: socket) } catch {
                            throw EndpointMuxError.client(error)
                        }
                        defer { client.close() }
                        for cycle in 0..<cycles {
                            let listener = try await client.listen(.tcp(host: "127.0.0.1", port: 0))
                            async let inbound = listener.accept().takeSocket().release()
                            let outbound = try await client.connect(listener.endpoint)
                            let accepted = try await inbound
                            var byte = UInt8(truncatingIfNeeded: cycle)
                            _ = send(outbound.rawValue, &byte, 1, Int32(MSG_NOSIGNAL))
                            var back: UInt8 = 0
                            let received = recv(accepted, &back, 1, 0)
                            close(accepted)
                            outbound.close()
                            try await listener.close()
                            guard received == 1, back == byte else {
                                throw EndpointMuxError.malformedAnswer("cycle \(cycle): byte lost")
                            }
                        }
                        return .success(cycles)
                    } catch let error as EndpointMuxError {
                        return .failure(error)
                    } catch {
                        return .failure(.malformedAnswer("\(error)"))
                    }
                }
            }
            var total = 0
            var failures: [EndpointMuxError] = []
            for await outcome in group {
                switch outcome {
                case let .success(count): total += count
                case let .failure(error): failures.append(error)
                }
            }
            if let first = failures.first {
                printError("muxctl broker: load: \(failures.count) clients failed, first: \(first)")
            }
            return total
        }
        let elapsed = start.duration(to: .now)
        let probes = prober.stop()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Int(Double(completed) / seconds) : 0
        say("load: \(clients) clients × \(cycles) cycles: \(completed) cycles in \(format(elapsed)) (\(rate) cycles/s)")
        say(
            "probes: \(probes.latencies.count) answered, \(probes.failures) failed, median \(format(probes.percentile(0.5))), p99 \(format(probes.percentile(0.99))), worst \(format(probes.percentile(1))), over 100 ms: \(probes.latencies.filter { $0 >= .milliseconds(100) }.count)"
        )
        let ok = completed == clients * cycles && probes.failures == 0 && probes.percentile(1) < .milliseconds(100)
        return ok ? MuxctlExit.ok : MuxctlExit.failed
    }
}

private func format(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    let milliseconds = Double(seconds) * 1000 + Double(attoseconds) / 1e15
    if milliseconds >= 1000 { return "\((milliseconds / 10).rounded() / 100) s" }
    return "\((milliseconds * 100).rounded() / 100) ms"
}

/// Echoes until end of file (blocking); returns the bytes echoed.
private func echoUntilEnd(_ fd: Int32) -> Int {
    var total = 0
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return total }
        var offset = 0
        while offset < n {
            let sent = chunk[offset..<n].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            if sent <= 0 { return total }
            offset += sent
        }
        total += n
    }
}

/// Identity probes every 20 ms on a dispatch thread (never on Swift concurrency's pool).
private final class Prober: @unchecked Sendable {
    struct Summary {
        var latencies: [Duration] = []
        var failures = 0
        func percentile(_ fraction: Double) -> Duration {
            guard !latencies.isEmpty else { return .zero }
            let sorted = latencies.sorted()
            return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]
        }
    }

    private let socket: String
    private let lock = DispatchSemaphore(value: 1)
    private var summary = Summary()
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)

    init(socket: String) { self.socket = socket }

    func start() {
        DispatchQueue(label: "muxctl.broker.prober").async { [self] in
            while true {
                lock.wait()
                let stop = stopping
                lock.signal()
                if stop { break }
                let begin = ContinuousClock.now
                let deadline = begin + .seconds(1)
                var ok = false
                if let client = try? FrameClient(socketPath: socket, connectDeadline: deadline) {
                    let request = ProbeRequest.random()
                    if let bytes = try? request.frame.encoded(), (try? client.write(bytes, deadline: deadline)) != nil,
                        let answer = try? client.readFrame(deadline: deadline)
                    {
                        ok = (try? ProbeResponse(validating: answer, for: request)) != nil
                    }
                }
                let elapsed = begin.duration(to: .now)
                lock.wait()
                if ok { summary.latencies.append(elapsed) } else { summary.failures += 1 }
                lock.signal()
                usleep(20_000)
            }
            done.signal()
        }
    }

    func stop() -> Summary {
        lock.wait()
        stopping = true
        lock.signal()
        done.wait()
        return summary
    }
}
