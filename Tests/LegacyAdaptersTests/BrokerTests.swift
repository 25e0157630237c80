import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux
@testable import LegacyAdapters

/// The broker on real sockets (issue 8's acceptance list). Every test counts
/// `/proc/self/fd` before and after; blocking waits run on dedicated threads.
extension FileDescriptorSuites {
    @Suite struct BrokerTests {
        /// `close()` then `deinit` (what `defer { client.close() }` does) must not touch the
        /// fd number again: a live socket put on that number in between keeps working. (The
        /// second close used to `shutdown` whatever held the number: in the load test below
        /// that cut other clients' sockets and the broker's listeners.)
        @Test(.timeLimit(.minutes(1)))
        func aClosedClientNeverShutsDownTheSocketThatReusedItsNumber() throws {
            let broker = try BrokerFixture()
            defer { broker.stop() }
            var client: BrokerClient? = try broker.client()
            let number = try #require(client?.core.fileDescriptor)
            client?.close()
            let (a, b) = try makeSocketPair()
            defer {
                close(a)
                close(b)
            }
            #expect(dup2(a, number) == number)  // a live socket on the closed client's number
            defer { close(number) }
            client = nil  // deinit: the second close
            #expect(sendAll(b, [7]))
            #expect(readExactly(number, 1) == [7])
            #expect(sendAll(number, [8]))
            #expect(readExactly(b, 1) == [8])
        }

        @Test(.timeLimit(.minutes(2)))
        func listenOnPortZeroAndEchoAHundredConnectionsFromAnotherProcess() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture()
                defer { broker.stop() }
                let client = try broker.client()
                defer { client.close() }
                let listener = try await client.listen(.tcp(host: "127.0.0.1", port: 0))
                guard case let .tcp(host, port) = listener.endpoint else {
                    Issue.record("listen answered \(listener.endpoint)")
                    return
                }
                #expect(host == "127.0.0.1")
                #expect(port != 0)
                let script = """
                    import socket, sys
                    for i in range(100):
                        s = socket.create_connection(("127.0.0.1", \(port)), timeout=20)
                        msg = ("hello %d from another process" % i).encode()
                        s.sendall(msg)
                        s.shutdown(socket.SHUT_WR)
                        got = b""
                        while True:
                            chunk = s.recv(4096)
                            if not chunk:
                                break
                            got += chunk
                        s.close()
                        if got != msg:
                            print("connection %d echoed %r" % (i, got), file=sys.stderr)
                            sys.exit(3)
                    print("echoed 100")
                    """
                let child = Task {
                    try await onDedicatedThread {
                        try runChild(["/usr/bin/python3", "-c", script], timeout: .seconds(90))
                    }
                }
                var peers: [BrokerEndpoint] = []
                for _ in 0..<100 {
                    let accepted = try await listener.accept()
                    peers.append(accepted.peer)
                    let fd = accepted.takeSocket().release()
                    try await onDedicatedThread { echoUntilEnd(fd) }
                }
                let outcome = try await child.value
                #expect(outcome.exitCode == 0, "\(outcome.stderr)")
                #expect(outcome.stdout == "echoed 100\n")
                #expect(peers.count == 100)
                #expect(
                    peers.allSatisfy {
                        if case let .tcp(host, peerPort) = $0 { host == "127.0.0.1" && peerPort != port } else { false }
                    })
                #expect(Set(peers).count == 100)  // 100 distinct client ports
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func threeWaitingAcceptsAreServedInOrder() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture()
                defer { broker.stop() }
                let client = try broker.client()
                defer { client.close() }
                let listener = try await client.listen(.tcp(host: "127.0.0.1", port: 0))
                guard case let .tcp(_, port) = listener.endpoint else { return }
                var tasks: [Task<String, any Error>] = []
                for waiting in 1...3 {
                    tasks.append(
                        Task {
                            let fd = try await listener.accept().takeSocket().release()
                            return try await onDedicatedThread {
                                defer { close(fd) }
                                return String(decoding: readExactly(fd, 1), as: UTF8.self)
                            }
                        })
                    #expect(try await broker.waitUntil { $0.waiting == waiting })
                }
                var connections: [Int32] = []
                for index in 1...3 {
                    let fd = try connectTCP(port: port)
                    sendAll(fd, Array("\(index)".utf8))
                    connections.append(fd)
                }
                var order: [String] = []
                for task in tasks { order.append(try await task.value) }
                #expect(order == ["1", "2", "3"])
                connections.forEach { close($0) }
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func connectToAListeningServerAndToAClosedPort() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture()
                defer { broker.stop() }
                let client = try broker.client()
                defer { client.close() }
                let (server, port) = try makeTCPListener()
                defer { close(server) }
                let socket = try await client.connect(.tcp(host: "127.0.0.1", port: port))
                let accepted = accept(server, nil, nil)
                #expect(accepted >= 0)
                sendAll(socket.rawValue, Array("ping".utf8))
                #expect(readExactly(accepted, 4) == Array("ping".utf8))
                sendAll(accepted, Array("pong".utf8))
                #expect(readExactly(socket.rawValue, 4) == Array("pong".utf8))
                close(accepted)
                socket.close()

                let closedPort = try closedTCPPort()
                do {
                    let unexpected = try await client.connect(.tcp(host: "127.0.0.1", port: closedPort))
                    Issue.record("connected to a closed port (fd \(unexpected.rawValue))")
                } catch {
                    guard case let .system(name, code, message)? = brokerError(error) else {
                        Issue.record("expected −32003, got \(error)")
                        return
                    }
                    #expect(name == "ECONNREFUSED")
                    #expect(code == ECONNREFUSED)
                    #expect(message == String(cString: strerror(ECONNREFUSED)))
                }
                // The connection is still usable.
                let again = try await client.connect(.tcp(host: "127.0.0.1", port: port))
                again.close()
                let straggler = accept(server, nil, nil)
                if straggler >= 0 { close(straggler) }
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func connectTimesOutAgainstAFullBacklogWithoutBlockingOtherClients() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture()
                defer { broker.stop() }
                let waiting = try broker.client()
                defer { waiting.close() }
                let other = try broker.client()
                defer { other.close() }
                // Backlog 0 holds one connection; further SYNs are dropped (SYN_SENT until timeout).
                let (server, port) = try makeTCPListener(backlog: 0)
                defer { close(server) }
                let fillers = [try connectTCP(port: port), try connectTCP(port: port, nonBlocking: true)]
                defer { fillers.forEach { close($0) } }

                let start = ContinuousClock.now
                let pending = Task { () -> Int32 in
                    try await waiting.connect(.tcp(host: "127.0.0.1", port: port), timeout: .milliseconds(1500))
                        .release()
                }
                #expect(try await broker.waitUntil { $0.connecting == 1 })
                // Meanwhile the broker serves others: listen, close, a probe.
                let listener = try await other.listen(.tcp(host: "127.0.0.1", port: 0))
                try await listener.close()
                let (probeTime, valid) = try await onDedicatedThread { try probeRoundTrip(broker.socketPath) }
                #expect(valid)
                #expect(probeTime < .milliseconds(100))
                #expect(start.duration(to: .now) < .milliseconds(1500))
                do {
                    let fd = try await pending.value
                    close(fd)
                    Issue.record("connected through a full backlog")
                } catch {
                    #expect(brokerError(error) == .timedOut)
                }
                #expect(start.duration(to: .now) >= .milliseconds(1500))
                #expect(try await broker.waitUntil { $0.connecting == 0 && $0.waiting == 0 })
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func pairConnectWaitsForAnAcceptAndTimesOutWithoutOne() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture()
                defer { broker.stop() }
                let server = try broker.client()
                defer { server.close() }
                let peer = try broker.client()
                defer { peer.close() }
                let listener = try await server.listen(.pair)
                #expect(listener.endpoint == .pair)

                // A connect waits until an accept takes it.
                let connecting = Task { () -> Int32 in try await peer.connect(listener: listener.id).release() }
                #expect(try await broker.waitUntil { $0.waiting == 1 })
                let accepted = try await listener.accept()
                #expect(accepted.peer == .pair)
                let serverEnd = accepted.takeSocket()
                let clientEnd = try await connecting.value
                sendAll(clientEnd, Array("over the pair".utf8))
                #expect(readExactly(serverEnd.rawValue, 13) == Array("over the pair".utf8))
                close(clientEnd)
                serverEnd.close()

                // A connect with no acceptor times out.
                let start = ContinuousClock.now
                do {
                    let fd = try await peer.connect(listener: listener.id, timeout: .milliseconds(200))
                    Issue.record("pair connect without an acceptor succeeded (fd \(fd.rawValue))")
                } catch {
                    #expect(brokerError(error) == .timedOut)
                }
                #expect(start.duration(to: .now) >= .milliseconds(200))

                // An accept with no connector waits (until cancelled).
                let acceptTask = Task { () -> Int32 in try await listener.accept().takeSocket().release() }
                #expect(try await broker.waitUntil { $0.waiting == 1 })
                #expect(try await broker.waitUntil(timeout: .milliseconds(300)) { $0.waiting == 0 } == false)
                acceptTask.cancel()
                do {
                    let fd = try await acceptTask.value
                    close(fd)
                    Issue.record("accept without a connector returned")
                } catch {
                    #expect(brokerError(error) == .cancelled)
                }
                #expect(try await broker.waitUntil { $0.waiting == 0 })
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func cancelEndsAWaitingAcceptAndAWaitingConnect() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture()
                defer { broker.stop() }
                let client = try broker.client()
                defer { client.close() }
                let listener = try await client.listen(.tcp(host: "127.0.0.1", port: 0))
                let acceptTask = Task { () -> Int32 in try await listener.accept().takeSocket().release() }
                #expect(try await broker.waitUntil { $0.waiting == 1 })

                let (server, port) = try makeTCPListener(backlog: 0)
                defer { close(server) }
                let fillers = [try connectTCP(port: port), try connectTCP(port: port, nonBlocking: true)]
                defer { fillers.forEach { close($0) } }
                let connectTask = Task { () -> Int32 in
                    try await client.connect(.tcp(host: "127.0.0.1", port: port), timeout: .seconds(60)).release()
                }
                #expect(try await broker.waitUntil { $0.waiting == 2 && $0.connecting == 1 })

                let start = ContinuousClock.now
                acceptTask.cancel()
                connectTask.cancel()
                for task in [acceptTask, connectTask] {
                    do {
                        let fd = try await task.value
                        close(fd)
                        Issue.record("a cancelled call returned a socket")
                    } catch {
                        #expect(brokerError(error) == .cancelled)
                    }
                }
                #expect(start.duration(to: .now) < .seconds(5))
                #expect(try await broker.waitUntil { $0.waiting == 0 && $0.connecting == 0 })
                // Still usable: the listener accepts again.
                guard case let .tcp(_, listenerPort) = listener.endpoint else { return }
                let inbound = try connectTCP(port: listenerPort)
                let accepted = try await listener.accept()
                accepted.takeSocket().close()
                close(inbound)
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func unknownListenerAndBadParamsAreAnsweredAndTheConnectionStaysUsable() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture()
                defer { broker.stop() }
                let client = try broker.client()
                defer { client.close() }

                let unknown = try await client.call(method: "accept", params: ["listener": 999])
                guard case let .error(unknownError) = unknown.response.outcome else {
                    Issue.record("accept on an unknown listener answered \(unknown.response)")
                    return
                }
                #expect(unknownError.code == -32002)
                #expect(unknownError.data?["name"] == "UnknownListener")

                let badParams: [JSONValue?] = [
                    ["endpoint": ["kind": "bogus"]],
                    ["endpoint": ["kind": "tcp", "host": "localhost", "port": 80]],
                    ["endpoint": ["kind": "tcp", "host": "127.0.0.1", "port": 70000]],
                    ["endpoint": ["kind": "unix", "path": "relative.sock"]],
                    ["endpoint": "tcp:127.0.0.1:80"],
                    nil,
                ]
                for params in badParams {
                    let reply = try await client.call(method: "listen", params: params)
                    guard case let .error(error) = reply.response.outcome else {
                        Issue.record("listen \(String(describing: params)) answered \(reply.response)")
                        continue
                    }
                    #expect(error.code == -32602)
                    #expect(error.data?["name"] == "InvalidParams")
                }
                let method = try await client.call(method: "bind", params: [:])
                guard case let .error(methodError) = method.response.outcome else { return }
                #expect(methodError.code == -32601)
                #expect(methodError.data?["name"] == "MethodNotFound")

                // Accept on a listener another client owns is unknown to this one.
                let owner = try broker.client()
                defer { owner.close() }
                let foreign = try await owner.listen(.tcp(host: "127.0.0.1", port: 0))
                let stolen = try await client.call(method: "accept", params: ["listener": foreign.id.jsonValue])
                if case let .error(error) = stolen.response.outcome {
                    #expect(error.code == -32002)
                } else {
                    Issue.record("accept on another client's listener answered \(stolen.response)")
                }

                // Still usable.
                let listener = try await client.listen(.tcp(host: "127.0.0.1", port: 0))
                try await listener.close()
                do {
                    try await listener.close()
                    Issue.record("closing twice succeeded")
                } catch {
                    #expect(brokerError(error) == .unknownListener(listener.id))
                }
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func policyDenialsNameTheMissingRule() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture(rules: ["listen=tcp:127.0.0.1:*"])
                defer { broker.stop() }
                let client = try broker.client()
                defer { client.close() }
                let cases: [(BrokerRequest, String)] = [
                    (.listen(endpoint: .tcp(host: "0.0.0.0", port: 0), backlog: nil), "listen=tcp:0.0.0.0:0"),
                    (
                        .connect(.endpoint(.tcp(host: "127.0.0.1", port: 6379)), timeoutMilliseconds: nil),
                        "connect=tcp:127.0.0.1:6379"
                    ),
                    (.listen(endpoint: .pair, backlog: nil), "pair"),
                    (.listen(endpoint: .unix(path: "/run/app/x.sock"), backlog: nil), "listen=unix:/run/app/x.sock"),
                ]
                for (request, rule) in cases {
                    let reply = try await client.call(method: request.method, params: request.params)
                    guard case let .error(error) = reply.response.outcome else {
                        Issue.record("\(request) was allowed")
                        continue
                    }
                    #expect(error.code == -32001)
                    #expect(error.data?["name"] == "PermissionDenied")
                    #expect(error.data?["rule"] == .string(rule))
                }
                let allowed = try await client.listen(.tcp(host: "127.0.0.1", port: 0))
                try await allowed.close()

                let strangers = try BrokerFixture(uids: [UInt32(getuid()) &+ 1])
                defer { strangers.stop() }
                let stranger = try strangers.client()
                defer { stranger.close() }
                do {
                    _ = try await stranger.listen(.tcp(host: "127.0.0.1", port: 0))
                    Issue.record("a uid outside --allow-uid could listen")
                } catch {
                    #expect(brokerError(error) == .permissionDenied(rule: "uid=\(getuid())"))
                }
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func aClientThatDisconnectsLeavesNoFileDescriptorBehind() async throws {
            let broker = try BrokerFixture()
            defer { broker.stop() }
            let (server, port) = try makeTCPListener(backlog: 0)
            defer { close(server) }
            let fillers = [try connectTCP(port: port), try connectTCP(port: port, nonBlocking: true)]
            defer { fillers.forEach { close($0) } }
            let survivor = try broker.client()
            defer { survivor.close() }
            let survivorPair = try await survivor.listen(.pair)
            try await expectNoFileDescriptorLeaks {
                let client = try broker.client()
                var tasks: [Task<Int32, any Error>] = []
                for _ in 0..<3 {
                    let listener = try await client.listen(.tcp(host: "127.0.0.1", port: 0))
                    tasks.append(Task { try await listener.accept().takeSocket().release() })
                }
                let unix = try await client.listen(.unix(path: broker.directory + "/app.sock"))
                tasks.append(Task { try await unix.accept().takeSocket().release() })
                let pair = try await client.listen(.pair)
                tasks.append(Task { try await pair.accept().takeSocket().release() })
                tasks.append(
                    Task {
                        try await client.connect(.tcp(host: "127.0.0.1", port: port), timeout: .seconds(60)).release()
                    })
                tasks.append(
                    Task { try await client.connect(listener: survivorPair.id, timeout: .seconds(60)).release() })
                #expect(try await broker.waitUntil { $0.listeners == 6 && $0.waiting == 7 && $0.connecting == 1 })
                #expect(FileManager.default.fileExists(atPath: broker.directory + "/app.sock"))
                client.close()
                for task in tasks {
                    do {
                        close(try await task.value)
                        Issue.record("a call returned a socket after its client closed")
                    } catch {
                        guard let error = error as? EndpointMuxError,
                            error.code == .peerClosed || error.code == .systemCallFailed
                        else {
                            Issue.record("expected a closed connection, got \(error)")
                            continue
                        }
                    }
                }
                #expect(
                    try await broker.waitUntil {
                        $0.clients == 1 && $0.listeners == 1 && $0.waiting == 0 && $0.connecting == 0
                    })
                #expect(!FileManager.default.fileExists(atPath: broker.directory + "/app.sock"))
            }
            try await survivorPair.close()
        }

        @Test(.timeLimit(.minutes(1)))
        func unixListenersAndProbesOnTheBrokerSocket() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture(rules: ["listen=unix:/tmp/*", "connect=unix:/tmp/*"])
                defer { broker.stop() }
                let client = try broker.client()
                defer { client.close() }
                let path = broker.directory + "/service.sock"
                let listener = try await client.listen(.unix(path: path))
                #expect(listener.endpoint == .unix(path: path))
                async let accepted = listener.accept().takeSocket().release()
                let outbound = try await client.connect(.unix(path: path))
                let inbound = try await accepted
                sendAll(outbound.rawValue, Array("unix".utf8))
                #expect(readExactly(inbound, 4) == Array("unix".utf8))
                close(inbound)
                outbound.close()
                let (elapsed, valid) = try await onDedicatedThread { try probeRoundTrip(broker.socketPath) }
                #expect(valid)
                #expect(elapsed < .milliseconds(100))
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func ipv6LoopbackListenAcceptAndConnect() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture(rules: ["listen=tcp:[::1]:*", "connect=tcp:[::1]:*"])
                defer { broker.stop() }
                let client = try broker.client()
                defer { client.close() }
                let listener = try await client.listen(.tcp(host: "0:0::1", port: 0))
                guard case let .tcp(host, port) = listener.endpoint else { return }
                #expect(host == "::1")
                #expect(port != 0)
                let accepting = Task { () -> (Int32, BrokerEndpoint) in
                    let accepted = try await listener.accept()
                    let peer = accepted.peer
                    return (accepted.takeSocket().release(), peer)
                }
                let outbound = try await client.connect(listener.endpoint)
                let (inbound, peer) = try await accepting.value
                #expect(peer == BrokerClient.addresses(of: outbound.rawValue).local)
                #expect(BrokerClient.addresses(of: outbound.rawValue).peer == .tcp(host: "::1", port: port))
                sendAll(outbound.rawValue, Array("v6".utf8))
                #expect(readExactly(inbound, 2) == Array("v6".utf8))
                close(inbound)
                outbound.close()
                // An IPv4 connect is not covered by the IPv6 rule.
                do {
                    _ = try await client.connect(.tcp(host: "127.0.0.1", port: port))
                    Issue.record("connect outside the rules succeeded")
                } catch {
                    #expect(brokerError(error) == .permissionDenied(rule: "connect=tcp:127.0.0.1:\(port)"))
                }
            }
        }

        @Test(.timeLimit(.minutes(1)))
        func limitsPassedFdsAndAStoppingBroker() async throws {
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture(limits: BrokerLimits(maxListenersPerClient: 1, maxWaitingPerClient: 1))
                let client = try broker.client()
                defer { client.close() }
                let listener = try await client.listen(.tcp(host: "127.0.0.1", port: 0))
                do {
                    _ = try await client.listen(.pair)
                    Issue.record("a second listener beyond the limit")
                } catch {
                    #expect(brokerError(error) == .limitExceeded("listeners per connection (1)"))
                }
                let waiting = Task { () -> Int32 in try await listener.accept().takeSocket().release() }
                #expect(try await broker.waitUntil { $0.waiting == 1 })
                do {
                    _ = try await client.connect(.tcp(host: "127.0.0.1", port: 9))
                    Issue.record("a second waiting request beyond the limit")
                } catch {
                    #expect(brokerError(error) == .limitExceeded("waiting requests per connection (1)"))
                }

                // Fds sent to the broker (the protocol passes none) are closed, not kept.
                let raw = try ControlClient(socketPath: broker.socketPath)
                let pipes = try makePipes(2)
                let reply = try await raw.call(
                    "close", params: ["listener": 12345], fileDescriptors: queue(owning: pipes))
                if case let .error(error) = reply.response.outcome { #expect(error.code == -32002) }

                // Stopping the broker ends waiting calls with its epitaph.
                broker.stop()
                do {
                    close(try await waiting.value)
                    Issue.record("an accept returned after the broker stopped")
                } catch {
                    guard (error as? EndpointMuxError)?.code == .epitaph else {
                        Issue.record("expected the broker's epitaph, got \(error)")
                        return
                    }
                }
                withExtendedLifetime(raw) {}
            }
        }

        /// CI size by default; `BROKER_LOAD_CLIENTS=64 BROKER_LOAD_CYCLES=200` is the
        /// acceptance run (scripts/broker-load.sh).
        @Test(.timeLimit(.minutes(10)))
        func loadCyclesReturnTheFileDescriptorCountAndProbesStayFast() async throws {
            let environment = ProcessInfo.processInfo.environment
            let clientCount = environment["BROKER_LOAD_CLIENTS"].flatMap(Int.init) ?? 16
            let cycles = environment["BROKER_LOAD_CYCLES"].flatMap(Int.init) ?? 25
            try await expectNoFileDescriptorLeaks {
                let broker = try BrokerFixture()
                defer { broker.stop() }
                let start = OpenFileDescriptorCount.current()
                let prober = ProbeLoop(socketPath: broker.socketPath)
                prober.start()
                let began = ContinuousClock.now
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<clientCount {
                        group.addTask {
                            let client = try broker.client()
                            defer { client.close() }
                            var done = 0
                            for cycle in 0..<cycles {
                                let listener = try await client.listen(.tcp(host: "127.0.0.1", port: 0))
                                async let accepted = listener.accept().takeSocket().release()
                                let outbound = try await client.connect(listener.endpoint)
                                let inbound = try await accepted
                                let byte = [UInt8(truncatingIfNeeded: cycle)]
                                let sent = sendAll(outbound.rawValue, byte)
                                let got = readExactly(inbound, 1)
                                guard got == byte else {
                                    let failure = errno
                                    throw FixtureError(
                                        operation: "echo (sent: \(sent), read \(got) for \(byte))", errno: failure)
                                }
                                close(inbound)
                                outbound.close()
                                try await listener.close()
                                done += 1
                            }
                            return done
                        }
                    }
                    var total = 0
                    for try await done in group { total += done }
                    #expect(total == clientCount * cycles)
                }
                let elapsed = began.duration(to: .now)
                let probes = prober.stop()
                #expect(try await broker.waitUntil { $0.clients == 0 && $0.listeners == 0 && $0.waiting == 0 })
                let settled = try await onDedicatedThread { () -> Int in
                    var count = OpenFileDescriptorCount.current()
                    for _ in 0..<100 where count != start {
                        usleep(20_000)
                        count = OpenFileDescriptorCount.current()
                    }
                    return count
                }
                #expect(settled == start, "fds: \(start) at start, \(settled) after the load")
                #expect(probes.count > 0)
                #expect(probes.failures == 0)
                #expect(probes.worst < .milliseconds(100), "worst probe \(probes.worst) of \(probes.count)")
                print(
                    "broker load: \(clientCount) clients × \(cycles) cycles in \(elapsed); \(probes.count) probes, median \(probes.median), worst \(probes.worst), \(probes.overLimit) over 100 ms, fds \(start) → \(settled)"
                )
            }
        }
    }
}

/// Probes a socket every 20 ms on a thread of its own, recording the worst round trip.
final class ProbeLoop: @unchecked Sendable {
    struct Summary {
        var count = 0
        var failures = 0
        var worst: Duration = .zero
        var all: [Duration] = []
        var overLimit: Int { all.filter { $0 >= .milliseconds(100) }.count }
        var median: Duration { all.isEmpty ? .zero : all.sorted()[all.count / 2] }
    }

    private let socketPath: String
    private let lock = NSLock()
    private var summary = Summary()
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)

    init(socketPath: String) { self.socketPath = socketPath }

    func start() {
        let thread = Thread { [self] in
            while !lock.withLock({ stopping }) {
                let outcome = try? probeRoundTrip(socketPath, timeout: .seconds(1))
                lock.withLock {
                    summary.count += 1
                    if let (elapsed, valid) = outcome, valid {
                        summary.worst = max(summary.worst, elapsed)
                        summary.all.append(elapsed)
                    } else {
                        summary.failures += 1
                    }
                }
                usleep(20_000)
            }
            done.signal()
        }
        thread.start()
    }

    func stop() -> Summary {
        lock.withLock { stopping = true }
        done.wait()
        return lock.withLock { summary }
    }
}
