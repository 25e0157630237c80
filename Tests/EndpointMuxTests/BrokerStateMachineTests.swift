import Testing

@_spi(Internals) @testable import EndpointMux

private typealias Action = BrokerStateMachine.Action

private let t0 = ContinuousClock.now
private func at(_ milliseconds: Int) -> ContinuousClock.Instant { t0 + .milliseconds(milliseconds) }

private let alice = BrokerClientID(1)
private let bob = BrokerClientID(2)

private func request(_ id: Int, _ request: BrokerRequest) -> ControlMessage {
    .request(request.controlRequest(id: .number(JSONNumber(id))))
}

private func target(_ client: BrokerClientID, _ id: Int) -> BrokerTarget {
    BrokerTarget(client: client, id: .number(JSONNumber(id)))
}

private func error(_ client: BrokerClientID, _ id: Int, _ error: BrokerError) -> Action {
    .reply(target(client, id), .error(error.errorObject))
}

private func result(_ client: BrokerClientID, _ id: Int, _ result: BrokerResult) -> Action {
    .reply(target(client, id), .result(result.jsonValue))
}

private let local = BrokerEndpoint.tcp(host: "127.0.0.1", port: 4000)
private let remote = BrokerEndpoint.tcp(host: "127.0.0.1", port: 50000)
private let l1 = BrokerListenerID(1)
private let l2 = BrokerListenerID(2)

/// A machine with everything allowed for uid 1000 and both clients connected.
private func machine(limits: BrokerLimits = BrokerLimits(), uids: Set<UInt32> = [1000]) throws -> BrokerStateMachine {
    let policy = try BrokerPolicy(
        allowing: ["listen=tcp:127.0.0.1:*", "connect=tcp:127.0.0.1:*", "pair"], allowedUIDs: uids)
    var machine = BrokerStateMachine(policy: policy, limits: limits)
    machine.clientConnected(alice, uid: 1000)
    machine.clientConnected(bob, uid: 1000)
    return machine
}

/// Alice's kernel listener 1, open.
private func withListener(_ machine: inout BrokerStateMachine) {
    machine.receive(
        request(1, .listen(endpoint: .tcp(host: "127.0.0.1", port: 0), backlog: nil)), from: alice, now: at(0))
    _ = machine.takeActions()
    machine.listenOpened(l1, endpoint: local)
    _ = machine.takeActions()
}

@Suite("Broker state machine")
struct BrokerStateMachineTests {
    @Test("listen opens a kernel listener and answers with the bound address")
    func listen() throws {
        var m = try machine()
        m.receive(
            request(1, .listen(endpoint: .tcp(host: "127.0.0.1", port: 0), backlog: nil)), from: alice, now: at(0))
        #expect(m.takeActions() == [.openListener(l1, .tcp(host: "127.0.0.1", port: 0), backlog: 128)])
        m.listenOpened(l1, endpoint: local)
        #expect(m.takeActions() == [result(alice, 1, .listening(listener: l1, endpoint: local))])
        m.receive(request(2, .listen(endpoint: .tcp(host: "127.0.0.1", port: 80), backlog: 7)), from: alice, now: at(0))
        #expect(m.takeActions() == [.openListener(l2, .tcp(host: "127.0.0.1", port: 80), backlog: 7)])
        m.listenFailed(l2, errno: 98)
        #expect(m.takeActions() == [error(alice, 2, .system(errno: 98))])
        #expect(m.listenerCount == 1)
    }

    @Test("accepts wait in order; accept(2) is wanted only while one waits")
    func acceptsInOrder() throws {
        var m = try machine()
        withListener(&m)
        #expect(!m.isAccepting(l1))
        for id in 10...12 { m.receive(request(id, .accept(listener: l1)), from: alice, now: at(0)) }
        #expect(m.takeActions() == [.setAccepting(l1, true)])
        #expect(m.isAccepting(l1))
        for id in 10...12 {
            let delivery = m.accepted(on: l1, local: local, peer: remote)
            #expect(delivery?.target == target(alice, id))
            #expect(delivery?.result == .accepted(listener: l1, local: local, peer: remote))
        }
        #expect(m.takeActions() == [.setAccepting(l1, false)])
        #expect(m.accepted(on: l1, local: local, peer: remote) == nil)
        #expect(m.waitingCount == 0)
    }

    @Test("connect: a result with the fd, a failure, a timeout at its deadline and not before")
    func connect() throws {
        var m = try machine()
        m.receive(request(1, .connect(.endpoint(local), timeoutMilliseconds: 500)), from: alice, now: at(0))
        guard case let .startConnect(first, endpoint)? = m.takeActions().first else {
            Issue.record("no connect started")
            return
        }
        #expect(endpoint == local)
        #expect(m.nextDeadline == at(500))
        let delivery = m.connectFinished(first, .success((local: remote, peer: local)))
        #expect(delivery?.target == target(alice, 1))
        #expect(delivery?.result == .connected(local: remote, peer: local))
        #expect(m.takeActions() == [])
        #expect(m.nextDeadline == nil)

        m.receive(request(2, .connect(.endpoint(local), timeoutMilliseconds: nil)), from: alice, now: at(0))
        guard case let .startConnect(second, _)? = m.takeActions().first else { return }
        #expect(m.nextDeadline == at(30_000))  // the default
        #expect(m.connectFinished(second, .failure(.system(errno: 111))) == nil)
        #expect(m.takeActions() == [error(alice, 2, .system(errno: 111))])

        m.receive(request(3, .connect(.endpoint(local), timeoutMilliseconds: 200)), from: alice, now: at(100))
        guard case let .startConnect(third, _)? = m.takeActions().first else { return }
        m.tick(now: at(299))
        #expect(m.takeActions() == [])
        m.tick(now: at(300))
        #expect(m.takeActions() == [.abortConnect(third), error(alice, 3, .timedOut)])
        #expect(m.connectFinished(third, .success((local: remote, peer: local))) == nil)  // late: the adapter closes it
        #expect(m.connectingCount == 0)
        #expect(m.waitingCount == 0)
    }

    @Test("pair: a connect waits for an accept, times out without one; an accept waits for a connect")
    func pair() throws {
        var m = try machine()
        m.receive(request(1, .listen(endpoint: .pair, backlog: nil)), from: alice, now: at(0))
        #expect(m.takeActions() == [result(alice, 1, .listening(listener: l1, endpoint: .pair))])

        m.receive(request(5, .connect(.listener(l1), timeoutMilliseconds: 1000)), from: bob, now: at(0))
        #expect(m.takeActions() == [])
        #expect(m.waitingCount == 1)
        m.receive(request(2, .accept(listener: l1)), from: alice, now: at(10))
        #expect(m.takeActions() == [.pair(connector: target(bob, 5), acceptor: target(alice, 2), listener: l1)])
        #expect(m.nextDeadline == nil)

        m.receive(request(6, .connect(.listener(l1), timeoutMilliseconds: 200)), from: bob, now: at(1000))
        m.tick(now: at(1199))
        #expect(m.takeActions() == [])
        m.tick(now: at(1200))
        #expect(m.takeActions() == [error(bob, 6, .timedOut)])

        m.receive(request(3, .accept(listener: l1)), from: alice, now: at(2000))
        m.tick(now: at(10_000_000))
        #expect(m.takeActions() == [])  // an accept has no deadline
        m.receive(request(7, .connect(.listener(l1), timeoutMilliseconds: nil)), from: bob, now: at(10_000_001))
        #expect(m.takeActions() == [.pair(connector: target(bob, 7), acceptor: target(alice, 3), listener: l1)])

        // Connecting to a kernel listener by id is a parameter error; to nothing, unknown.
        m.receive(
            request(4, .listen(endpoint: .tcp(host: "127.0.0.1", port: 0), backlog: nil)), from: alice, now: at(0))
        _ = m.takeActions()
        m.listenOpened(l2, endpoint: local)
        _ = m.takeActions()
        m.receive(request(8, .connect(.listener(l2), timeoutMilliseconds: nil)), from: bob, now: at(0))
        #expect(
            m.takeActions() == [
                error(bob, 8, .decode(.conflict("listener 2 is not a pair listener: connect to its endpoint")))
            ])
        m.receive(
            request(9, .connect(.listener(BrokerListenerID(77)), timeoutMilliseconds: nil)), from: bob, now: at(0))
        #expect(m.takeActions() == [error(bob, 9, .unknownListener(BrokerListenerID(77)))])
    }

    @Test("cancel answers the waiting request -32800 and undoes what it started")
    func cancel() throws {
        var m = try machine()
        withListener(&m)
        m.receive(request(10, .accept(listener: l1)), from: alice, now: at(0))
        m.receive(request(11, .connect(.endpoint(local), timeoutMilliseconds: nil)), from: alice, now: at(0))
        guard case let .startConnect(connect, _)? = m.takeActions().last else { return }
        m.receive(.notification(BrokerCancel(id: 10).notification), from: alice, now: at(1))
        #expect(m.takeActions() == [.setAccepting(l1, false), error(alice, 10, .cancelled)])
        m.receive(.notification(BrokerCancel(id: 11).notification), from: alice, now: at(1))
        #expect(m.takeActions() == [.abortConnect(connect), error(alice, 11, .cancelled)])
        // Unknown ids, other clients' ids, finished requests: nothing (notifications are never answered).
        m.receive(.notification(BrokerCancel(id: 11).notification), from: alice, now: at(1))
        m.receive(.notification(BrokerCancel(id: 99).notification), from: alice, now: at(1))
        m.receive(
            .notification(ControlNotification(method: "$/cancelRequest", params: ["id": [1]])), from: alice, now: at(1))
        m.receive(request(12, .accept(listener: l1)), from: alice, now: at(1))
        _ = m.takeActions()
        m.receive(.notification(BrokerCancel(id: 12).notification), from: bob, now: at(1))
        #expect(m.takeActions() == [])
        #expect(m.waitingCount == 1)
    }

    @Test("close answers waiting accepts -32005 and other clients' pair connects too")
    func close() throws {
        var m = try machine()
        withListener(&m)
        m.receive(request(10, .accept(listener: l1)), from: alice, now: at(0))
        m.receive(request(11, .accept(listener: l1)), from: alice, now: at(0))
        _ = m.takeActions()
        m.receive(request(12, .close(listener: l1)), from: alice, now: at(0))
        #expect(
            m.takeActions() == [
                error(alice, 10, .listenerClosed(l1)), .setAccepting(l1, false), error(alice, 11, .listenerClosed(l1)),
                .closeListener(l1), result(alice, 12, .closed),
            ])
        m.receive(request(13, .close(listener: l1)), from: alice, now: at(0))
        #expect(m.takeActions() == [error(alice, 13, .unknownListener(l1))])

        m.receive(request(14, .listen(endpoint: .pair, backlog: nil)), from: alice, now: at(0))
        _ = m.takeActions()
        m.receive(request(1, .connect(.listener(l2), timeoutMilliseconds: nil)), from: bob, now: at(0))
        m.receive(request(2, .close(listener: l2)), from: bob, now: at(0))  // not bob's
        #expect(m.takeActions() == [error(bob, 2, .unknownListener(l2))])
        m.receive(request(15, .close(listener: l2)), from: alice, now: at(0))
        #expect(m.takeActions() == [error(bob, 1, .listenerClosed(l2)), result(alice, 15, .closed)])
    }

    @Test("limits, duplicate ids, uids and rules are answered, never dropped")
    func refusals() throws {
        var m = try machine(limits: BrokerLimits(maxListenersPerClient: 1, maxWaitingPerClient: 2))
        withListener(&m)
        m.receive(request(2, .listen(endpoint: .pair, backlog: nil)), from: alice, now: at(0))
        #expect(m.takeActions() == [error(alice, 2, .limitExceeded("listeners per connection (1)"))])
        m.receive(request(3, .accept(listener: l1)), from: alice, now: at(0))
        m.receive(request(3, .accept(listener: l1)), from: alice, now: at(0))
        #expect(m.takeActions() == [.setAccepting(l1, true), error(alice, 3, .duplicateRequestID(3))])
        m.receive(request(4, .accept(listener: l1)), from: alice, now: at(0))
        m.receive(request(5, .accept(listener: l1)), from: alice, now: at(0))
        #expect(m.takeActions() == [error(alice, 5, .limitExceeded("waiting requests per connection (2)"))])
        m.receive(request(6, .listen(endpoint: .tcp(host: "10.0.0.1", port: 1), backlog: nil)), from: bob, now: at(0))
        #expect(m.takeActions() == [error(bob, 6, .permissionDenied(rule: "listen=tcp:10.0.0.1:1"))])
        m.receive(request(7, .accept(listener: l1)), from: bob, now: at(0))
        #expect(m.takeActions() == [error(bob, 7, .unknownListener(l1))])
        m.receive(.request(ControlRequest(method: "listen", params: ["endpoint": "x"], id: 8)), from: bob, now: at(0))
        #expect(m.takeActions() == [error(bob, 8, .decode(.wrongType(member: "endpoint", expected: "an object")))])
        m.receive(.request(ControlRequest(method: "shutdown", params: nil, id: "s")), from: bob, now: at(0))
        #expect(
            m.takeActions() == [
                .reply(
                    BrokerTarget(client: bob, id: "s"), .error(BrokerDecodeError.unknownMethod("shutdown").errorObject))
            ])

        let carol = BrokerClientID(3)
        m.clientConnected(carol, uid: 4242)
        m.receive(request(1, .listen(endpoint: .pair, backlog: nil)), from: carol, now: at(0))
        #expect(m.takeActions() == [error(carol, 1, .permissionDenied(rule: "uid=4242"))])
        m.receive(.response(ControlResponse(id: 1, result: .null)), from: carol, now: at(0))
        #expect(m.takeActions() == [])
    }

    @Test("a client's disconnect closes what it owns and answers others who waited on it")
    func disconnect() throws {
        var m = try machine()
        withListener(&m)
        m.receive(request(2, .listen(endpoint: .pair, backlog: nil)), from: alice, now: at(0))
        m.receive(request(3, .accept(listener: l1)), from: alice, now: at(0))
        m.receive(request(4, .connect(.endpoint(local), timeoutMilliseconds: nil)), from: alice, now: at(0))
        let started = m.takeActions()
        guard case let .startConnect(connect, _)? = started.last else { return }
        m.receive(request(9, .connect(.listener(l2), timeoutMilliseconds: nil)), from: bob, now: at(0))
        _ = m.takeActions()
        m.clientDisconnected(alice)
        let actions = m.takeActions()
        #expect(
            Set(actions)
                == Set([
                    .setAccepting(l1, false), .abortConnect(connect), .closeListener(l1),
                    error(bob, 9, .listenerClosed(l2)),
                ]))
        #expect(!actions.contains { if case let .reply(target, _) = $0 { target.client == alice } else { false } })
        #expect(m.listenerCount == 0)
        #expect(m.waitingCount == 0)
        #expect(m.connectingCount == 0)
        #expect(m.nextDeadline == nil)
        #expect(m.clientCount == 1)
        m.receive(request(5, .accept(listener: l1)), from: alice, now: at(0))  // a gone client: ignored
        #expect(m.takeActions() == [])
    }

    /// Random traffic from three clients: every request is answered exactly once (plus one
    /// answer per reuse of its id), never to a client that is gone — once the adapter's work finishes, deadlines pass and listeners close.
    @Test("every request is answered exactly once (random traffic)", arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func everyRequestAnsweredOnce(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var m = try machine(limits: BrokerLimits(maxListenersPerClient: 3, maxWaitingPerClient: 5))
        let clients = [alice, bob, BrokerClientID(3)]
        m.clientConnected(clients[2], uid: 1000)
        var connected = Set(clients)
        var answers: [BrokerTarget: Int] = [:]
        var reused: [BrokerTarget: Int] = [:]
        var opening: [BrokerListenerID] = []
        var starting: [BrokerConnectID] = []
        var strays = 0
        var now = 0
        var nextID = 1
        func answered(_ target: BrokerTarget) {
            if connected.contains(target.client) { answers[target, default: 0] += 1 } else { strays += 1 }
        }
        func absorb() {
            for action in m.takeActions() {
                switch action {
                case let .reply(target, _): answered(target)
                case let .pair(connector, acceptor, _):
                    answered(connector)
                    answered(acceptor)
                case let .openListener(id, _, _): opening.append(id)
                case let .startConnect(id, _): starting.append(id)
                case .closeListener, .setAccepting, .abortConnect: break
                }
            }
        }
        func ask(_ client: BrokerClientID, _ id: Int, _ message: ControlMessage) {
            if connected.contains(client) {
                let key = target(client, id)
                if answers[key] != nil { reused[key, default: 0] += 1 } else { answers[key] = 0 }
            }
            m.receive(message, from: client, now: at(now))
        }
        for _ in 0..<3000 {
            let client = clients[Int(random.next() % 3)]
            let listener = BrokerListenerID(random.next() % 40)
            let id = nextID
            nextID += 1
            switch random.next() % 12 {
            case 0:
                ask(client, id, request(id, .listen(endpoint: random.next() % 2 == 0 ? .pair : local, backlog: nil)))
            case 1: ask(client, id, request(id, .accept(listener: listener)))
            case 2:
                ask(
                    client, id,
                    request(id, .connect(.listener(listener), timeoutMilliseconds: Int(random.next() % 300))))
            case 3:
                ask(client, id, request(id, .connect(.endpoint(local), timeoutMilliseconds: Int(random.next() % 300))))
            case 4: ask(client, id, request(id, .close(listener: listener)))
            case 5:
                ask(client, id, .request(ControlRequest(method: "listen", params: [:], id: .number(JSONNumber(id)))))
            case 6:
                let old = max(1, id - 1 - Int(random.next() % 5))
                ask(client, old, request(old, .accept(listener: listener)))
            case 7:
                m.receive(
                    .notification(BrokerCancel(id: .number(JSONNumber(id - Int(random.next() % 10)))).notification),
                    from: client, now: at(now))
            case 8:
                if let opened = opening.popLast() {
                    if random.next() % 4 == 0 {
                        m.listenFailed(opened, errno: 98)
                    } else {
                        m.listenOpened(opened, endpoint: local)
                    }
                }
            case 9:
                if !starting.isEmpty {
                    let connect = starting.remove(at: Int(random.next() % UInt64(starting.count)))
                    let outcome: Result<(local: BrokerEndpoint, peer: BrokerEndpoint), BrokerError> =
                        random.next() % 2 == 0 ? .success((local: local, peer: remote)) : .failure(.system(errno: 111))
                    if let delivery = m.connectFinished(connect, outcome) { answered(delivery.target) }
                }
            case 10:
                if let delivery = m.accepted(on: listener, local: local, peer: remote) { answered(delivery.target) }
            default:
                now += Int(random.next() % 100)
                m.tick(now: at(now))
                absorb()
                if random.next() % 100 == 0 && connected.count > 1 {
                    connected.remove(client)
                    m.clientDisconnected(client)
                    answers = answers.filter { $0.key.client != client }
                    reused = reused.filter { $0.key.client != client }
                }
            }
            absorb()
        }
        // Finish: the adapter's work completes, deadlines pass, every owner closes its listeners.
        for opened in opening { m.listenOpened(opened, endpoint: local) }
        for connect in starting { _ = m.connectFinished(connect, .failure(.system(errno: 111))) }
        absorb()
        now += 1_000_000
        m.tick(now: at(now))
        absorb()
        for client in connected {
            for raw in 0..<UInt64(nextID) {
                let id = nextID
                nextID += 1
                ask(client, id, request(id, .close(listener: BrokerListenerID(raw))))
                absorb()
            }
        }
        #expect(m.waitingCount == 0)
        #expect(m.listenerCount == 0)
        #expect(m.connectingCount == 0)
        #expect(strays == 0, "answers to clients that were gone")
        // An id reused while waiting gets the duplicate refusal, one reused after its answer
        // is a new request: either way, one more answer per reuse.
        let wrong = answers.filter { $0.value != 1 + reused[$0.key, default: 0] }
        #expect(wrong.isEmpty, "requests answered other than once: \(wrong.prefix(5))")
        #expect(answers.count > 500)
    }
}
