import ArgumentParser
import EndpointMux
import LegacyAdapters
import Glibc

/// netbroker: network capabilities for sandboxed daemons, over the JSON-FD control channel.
///
///     netbroker --socket /run/netbroker.sock --allow listen=tcp:127.0.0.1:* --allow pair --allow-uid 1000
@main
struct NetBroker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "netbroker",
        abstract:
            "Listen, accept and connect on behalf of clients of a Unix socket, passing them the sockets (issue 8).",
        discussion: """
            Rules (default deny; repeat --allow): listen=tcp:HOST:PORT, connect=tcp:HOST:PORT \
            (HOST an IP literal or *, IPv6 in brackets; PORT a number or *), listen=unix:PATH, \
            connect=unix:PATH (* matches within a path component, a final * any remainder), pair. \
            Clients must run as the broker's own uid or one given with --allow-uid (SO_PEERCRED). \
            The socket also answers EndpointMux identity probes (muxctl probe --socket PATH).
            """)

    @Option(help: "Unix socket to serve.") var socket: String
    @Option(name: .customLong("allow"), help: "A rule, e.g. listen=tcp:127.0.0.1:* (repeatable).") var rules: [String] =
        []
    @Option(name: .customLong("allow-uid"), help: "A uid allowed besides the broker's own (repeatable).") var uids:
        [UInt32] = []
    @Option(name: .customLong("max-listeners"), help: "Listeners per client connection.") var maxListeners = 64
    @Option(name: .customLong("max-waiting"), help: "Waiting accept/connect requests per client connection.")
    var maxWaiting = 256
    @Option(name: .customLong("connect-timeout-ms"), help: "Timeout of a connect that names none, in ms.")
    var connectTimeout = 30_000

    func validate() throws {
        for rule in rules {
            do { _ = try BrokerPolicy.Rule(parsing: rule) } catch { throw ValidationError(error.description) }
        }
        guard maxListeners > 0, maxWaiting > 0, connectTimeout > 0 else {
            throw ValidationError("--max-listeners, --max-waiting and --connect-timeout-ms must be positive")
        }
    }

    func run() throws {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)
        let policy = try BrokerPolicy(allowing: rules, allowedUIDs: Set(uids + [UInt32(getuid())]))
        let limits = BrokerLimits(
            maxListenersPerClient: maxListeners, maxWaitingPerClient: maxWaiting,
            defaultConnectTimeout: .milliseconds(connectTimeout))
        let server = try BrokerServer(name: "netbroker", socketPath: socket, policy: policy, limits: limits)
        print("netbroker: serving \(socket), pid \(getpid())")
        print(
            "rules: \(policy.rules.isEmpty ? "none (everything denied)" : policy.rules.map(\.description).joined(separator: " "))"
        )
        print("uids: \(policy.allowedUIDs.sorted().map(String.init).joined(separator: " "))")
        fflush(nil)
        var received: Int32 = 0
        sigwait(&signals, &received)
        server.stop()
        print("netbroker: stopped on signal \(received)")
    }
}
