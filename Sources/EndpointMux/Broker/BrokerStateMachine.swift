/// A broker client connection's id (chosen by the adapter).
package struct BrokerClientID: Hashable, Sendable, Comparable, CustomStringConvertible {
    package var rawValue: UInt64
    package init(_ rawValue: UInt64) { self.rawValue = rawValue }
    package static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    package var description: String { "client \(rawValue)" }
}

/// One request of one client: where an answer goes.
package struct BrokerTarget: Hashable, Sendable {
    package var client: BrokerClientID
    package var id: JSONRPCID
    package init(client: BrokerClientID, id: JSONRPCID) {
        self.client = client
        self.id = id
    }
}

/// An in-progress kernel connect (the adapter's socket for it).
package struct BrokerConnectID: Hashable, Sendable {
    package var rawValue: UInt64
    package init(_ rawValue: UInt64) { self.rawValue = rawValue }
}

/// Per-connection limits of a broker (−32006 beyond them) and its defaults.
public struct BrokerLimits: Hashable, Sendable {
    /// Listeners one client connection may hold.
    public var maxListenersPerClient: Int
    /// `accept` and `connect` requests one client connection may have waiting.
    public var maxWaitingPerClient: Int
    /// A `connect` without `timeoutMs` gives up after this long.
    public var defaultConnectTimeout: Duration
    /// The `listen` backlog when none is asked for.
    public var defaultBacklog: Int

    /// Limits with the defaults: 64 listeners, 256 waiting requests, 30 s connects, backlog 128.
    public init(
        maxListenersPerClient: Int = 64, maxWaitingPerClient: Int = 256,
        defaultConnectTimeout: Duration = .seconds(30), defaultBacklog: Int = 128
    ) {
        self.maxListenersPerClient = maxListenersPerClient
        self.maxWaitingPerClient = maxWaitingPerClient
        self.defaultConnectTimeout = defaultConnectTimeout
        self.defaultBacklog = defaultBacklog
    }
}

/// Every decision of a broker, sans-IO: per client its listeners, the `accept`s waiting on
/// each listener in order, `connect`s waiting with deadlines, the `pair` rendezvous, the
/// policy and the limits. Inputs are control messages, the adapter's results (a listener
/// bound, a connection accepted, a connect finished) and the instant; outputs are
/// ``BrokerAction``s taken in order (``takeActions()``), plus direct answers for the
/// results that carry an fd. It never reads a clock, so every timer is tested with
/// synthetic instants.
///
/// Every request is answered exactly once: with a result, or with an error (bad params,
/// denied, unknown listener, system error, timed out, listener closed, limit, cancelled).
/// Nothing a client owns outlives its connection (``clientDisconnected(_:)``).
package struct BrokerStateMachine: Sendable {
    /// What the adapter does next.
    package enum Action: Hashable, Sendable {
        /// Send this answer (no fd).
        case reply(BrokerTarget, ControlResponse.Outcome)
        /// Bind and listen; then call ``listenOpened(_:endpoint:)`` or ``listenFailed(_:errno:)``.
        case openListener(BrokerListenerID, BrokerEndpoint, backlog: Int)
        /// Close the kernel listener.
        case closeListener(BrokerListenerID)
        /// Call `accept(2)` on the listener when readable (true) or stop (false).
        case setAccepting(BrokerListenerID, Bool)
        /// Start a non-blocking connect; then call ``connectFinished(_:_:)``.
        case startConnect(BrokerConnectID, BrokerEndpoint)
        /// Close the in-progress connect (timed out, cancelled, client gone).
        case abortConnect(BrokerConnectID)
        /// Make a socketpair: one end answers the connector's `connect`, the other the
        /// acceptor's `accept` on `listener`.
        case pair(connector: BrokerTarget, acceptor: BrokerTarget, listener: BrokerListenerID)
    }

    private struct Client {
        var uid: UInt32
        var listeners: Set<BrokerListenerID> = []
        var waiting: [JSONRPCID: UInt64] = [:]
    }

    private struct Listener {
        var owner: BrokerClientID
        var isPair: Bool
        var isOpen: Bool
        var opener: BrokerTarget
        /// Waiting accepts, oldest first.
        var accepts: [UInt64] = []
        /// Waiting pair connects, oldest first.
        var connects: [UInt64] = []
    }

    private enum WaitKind: Hashable {
        case accept(BrokerListenerID)
        case connect(BrokerConnectID)
        case pairConnect(BrokerListenerID)
    }

    private struct Wait {
        var target: BrokerTarget
        var kind: WaitKind
        var deadline: ContinuousClock.Instant?
    }

    /// The policy every request is checked against.
    package let policy: BrokerPolicy
    /// The limits.
    package let limits: BrokerLimits

    private var clients: [BrokerClientID: Client] = [:]
    private var listeners: [BrokerListenerID: Listener] = [:]
    private var waits: [UInt64: Wait] = [:]
    private var connects: [BrokerConnectID: UInt64] = [:]
    private var deadlines = DeadlineHeap<UInt64>()
    private var nextListener: UInt64 = 1
    private var nextWait: UInt64 = 1
    private var actions: [Action] = []

    package init(policy: BrokerPolicy, limits: BrokerLimits = BrokerLimits()) {
        self.policy = policy
        self.limits = limits
    }

    // MARK: - Observation

    /// The actions decided since the last call, in order.
    package mutating func takeActions() -> [Action] {
        defer { actions.removeAll(keepingCapacity: true) }
        return actions
    }

    /// The earliest deadline of a waiting request (call ``tick(now:)`` then).
    package var nextDeadline: ContinuousClock.Instant? { deadlines.earliest?.instant }

    /// Clients connected.
    package var clientCount: Int { clients.count }
    /// Listeners open or opening, all clients.
    package var listenerCount: Int { listeners.count }
    /// Requests waiting, all clients.
    package var waitingCount: Int { waits.count }
    /// Kernel connects in progress.
    package var connectingCount: Int { connects.count }

    /// Whether an `accept` waits on `listener` (the adapter accepts only then).
    package func isAccepting(_ listener: BrokerListenerID) -> Bool {
        guard let entry = listeners[listener] else { return false }
        return entry.isOpen && !entry.isPair && !entry.accepts.isEmpty
    }

    // MARK: - Clients

    /// A client connected with `uid` (from `SO_PEERCRED`).
    package mutating func clientConnected(_ client: BrokerClientID, uid: UInt32) {
        clients[client] = Client(uid: uid)
    }

    /// The client's connection ended: its listeners close, its waiting requests and
    /// connects are dropped (no answer: there is nobody to answer), and pair connects of
    /// other clients waiting on its listeners get −32005.
    package mutating func clientDisconnected(_ client: BrokerClientID) {
        guard let state = clients[client] else { return }
        for waitID in state.waiting.values { removeWait(waitID, answer: nil) }
        for listener in state.listeners.sorted() { removeListener(listener) }
        clients[client] = nil
    }

    // MARK: - Messages

    /// A control message from `client` at `now`.
    package mutating func receive(_ message: ControlMessage, from client: BrokerClientID, now: ContinuousClock.Instant)
    {
        guard clients[client] != nil else { return }
        switch message {
        case let .request(request):
            handle(request, from: client, now: now)
        case let .notification(notification):
            guard notification.method == BrokerCancel.method,
                let cancel = try? BrokerCancel(decoding: notification),
                let waitID = clients[client]?.waiting[cancel.id]
            else { return }
            removeWait(waitID, answer: .cancelled)
        case .response:
            return
        }
    }

    private mutating func handle(_ request: ControlRequest, from client: BrokerClientID, now: ContinuousClock.Instant) {
        let target = BrokerTarget(client: client, id: request.id)
        func fail(_ error: BrokerError) { actions.append(.reply(target, .error(error.errorObject))) }
        let decoded: BrokerRequest
        do {
            decoded = try BrokerRequest(decoding: request)
        } catch {
            fail(.decode(error))
            return
        }
        guard let state = clients[client] else { return }
        if let rule = policy.check(uid: state.uid) { return fail(.permissionDenied(rule: rule)) }
        if state.waiting[request.id] != nil { return fail(.duplicateRequestID(request.id)) }

        switch decoded {
        case let .listen(endpoint, backlog):
            if let rule = policy.missingRule(listen: endpoint) { return fail(.permissionDenied(rule: rule)) }
            guard state.listeners.count < limits.maxListenersPerClient else {
                return fail(.limitExceeded("listeners per connection (\(limits.maxListenersPerClient))"))
            }
            let id = BrokerListenerID(nextListener)
            nextListener += 1
            let isPair = endpoint == .pair
            listeners[id] = Listener(owner: client, isPair: isPair, isOpen: isPair, opener: target)
            clients[client]?.listeners.insert(id)
            if isPair {
                actions.append(.reply(target, .result(BrokerResult.listening(listener: id, endpoint: .pair).jsonValue)))
            } else {
                actions.append(.openListener(id, endpoint, backlog: backlog ?? limits.defaultBacklog))
            }

        case let .accept(id):
            guard let listener = listeners[id], listener.owner == client, listener.isOpen else {
                return fail(.unknownListener(id))
            }
            guard state.waiting.count < limits.maxWaitingPerClient else { return fail(waitingLimit) }
            if listener.isPair, let connectorWait = listener.connects.first, let connector = waits[connectorWait] {
                removeWait(connectorWait, answer: nil)
                actions.append(.pair(connector: connector.target, acceptor: target, listener: id))
                return
            }
            let waitID = addWait(Wait(target: target, kind: .accept(id), deadline: nil))
            listeners[id]?.accepts.append(waitID)
            if !listener.isPair && listener.accepts.isEmpty { actions.append(.setAccepting(id, true)) }

        case let .connect(.endpoint(endpoint), timeout):
            if let rule = policy.missingRule(connect: endpoint) { return fail(.permissionDenied(rule: rule)) }
            guard state.waiting.count < limits.maxWaitingPerClient else { return fail(waitingLimit) }
            let connectID = BrokerConnectID(nextWait)
            let deadline = now + (timeout.map { .milliseconds($0) } ?? limits.defaultConnectTimeout)
            let waitID = addWait(Wait(target: target, kind: .connect(connectID), deadline: deadline))
            connects[connectID] = waitID
            actions.append(.startConnect(connectID, endpoint))

        case let .connect(.listener(id), timeout):
            guard let listener = listeners[id], listener.isOpen else { return fail(.unknownListener(id)) }
            guard listener.isPair else {
                return fail(.decode(.conflict("listener \(id) is not a pair listener: connect to its endpoint")))
            }
            if let rule = policy.missingRule(connect: .pair) { return fail(.permissionDenied(rule: rule)) }
            guard state.waiting.count < limits.maxWaitingPerClient else { return fail(waitingLimit) }
            if let acceptorWait = listener.accepts.first, let acceptor = waits[acceptorWait] {
                removeWait(acceptorWait, answer: nil)
                actions.append(.pair(connector: target, acceptor: acceptor.target, listener: id))
                return
            }
            let deadline = now + (timeout.map { .milliseconds($0) } ?? limits.defaultConnectTimeout)
            let waitID = addWait(Wait(target: target, kind: .pairConnect(id), deadline: deadline))
            listeners[id]?.connects.append(waitID)

        case let .close(id):
            guard let listener = listeners[id], listener.owner == client, listener.isOpen else {
                return fail(.unknownListener(id))
            }
            removeListener(id)
            actions.append(.reply(target, .result(BrokerResult.closed.jsonValue)))
        }
    }

    private var waitingLimit: BrokerError {
        .limitExceeded("waiting requests per connection (\(limits.maxWaitingPerClient))")
    }

    // MARK: - The adapter's results

    /// The kernel listener is bound at `endpoint` (the real port when 0 was asked). Returns
    /// false when nobody wants it any more (its client left while it was being opened): the
    /// adapter closes it.
    @discardableResult
    package mutating func listenOpened(_ id: BrokerListenerID, endpoint: BrokerEndpoint) -> Bool {
        guard let listener = listeners[id], !listener.isOpen else { return false }
        listeners[id]?.isOpen = true
        actions.append(
            .reply(listener.opener, .result(BrokerResult.listening(listener: id, endpoint: endpoint).jsonValue)))
        return true
    }

    /// Binding or listening failed with `errno`.
    package mutating func listenFailed(_ id: BrokerListenerID, errno: Int32) {
        guard let listener = listeners[id], !listener.isOpen else { return }
        listeners[id] = nil
        clients[listener.owner]?.listeners.remove(id)
        actions.append(.reply(listener.opener, .error(BrokerError.system(errno: errno).errorObject)))
    }

    /// The adapter accepted a connection on `id`: the oldest waiting `accept` gets it. Returns
    /// where the fd goes and the result to send with it; `nil` when nobody waits (close it).
    package mutating func accepted(
        on id: BrokerListenerID, local: BrokerEndpoint, peer: BrokerEndpoint
    )
        -> (target: BrokerTarget, result: BrokerResult)?
    {
        guard let listener = listeners[id], let waitID = listener.accepts.first, let wait = waits[waitID] else {
            return nil
        }
        removeWait(waitID, answer: nil)
        return (wait.target, .accepted(listener: id, local: local, peer: peer))
    }

    /// Accepting on `id` failed with `errno` (not `EAGAIN`, not a transient per-connection
    /// error): the oldest waiting `accept` gets −32003.
    package mutating func acceptFailed(on id: BrokerListenerID, errno: Int32) {
        guard let waitID = listeners[id]?.accepts.first else { return }
        removeWait(waitID, answer: .system(errno: errno))
    }

    /// A kernel connect finished. On success returns where the fd goes and its result (`nil`:
    /// nobody waits any more, close it); a failure is answered here.
    package mutating func connectFinished(
        _ connect: BrokerConnectID, _ outcome: Result<(local: BrokerEndpoint, peer: BrokerEndpoint), BrokerError>
    )
        -> (target: BrokerTarget, result: BrokerResult)?
    {
        guard let waitID = connects[connect], let wait = waits[waitID] else { return nil }
        switch outcome {
        case let .success(addresses):
            connects[connect] = nil  // finished: no abort
            removeWait(waitID, answer: nil)
            return (wait.target, .connected(local: addresses.local, peer: addresses.peer))
        case let .failure(error):
            connects[connect] = nil
            removeWait(waitID, answer: error)
            return nil
        }
    }

    /// Expires the waiting requests whose deadline is at or before `now` (−32004).
    package mutating func tick(now: ContinuousClock.Instant) {
        while true {
            let live = waits
            deadlines.discardStale { live[$0] == nil }
            guard let (_, waitID) = deadlines.popDue(now: MonotonicInstant(now)) else { return }
            removeWait(waitID, answer: .timedOut)
        }
    }

    // MARK: - Bookkeeping

    private mutating func addWait(_ wait: Wait) -> UInt64 {
        let waitID = nextWait
        nextWait += 1
        waits[waitID] = wait
        clients[wait.target.client]?.waiting[wait.target.id] = waitID
        if let deadline = wait.deadline { deadlines.push(MonotonicInstant(deadline), waitID) }
        return waitID
    }

    /// Forgets a wait everywhere; answers it with `answer` when given; aborts its connect.
    private mutating func removeWait(_ waitID: UInt64, answer: BrokerError?) {
        guard let wait = waits.removeValue(forKey: waitID) else { return }
        clients[wait.target.client]?.waiting[wait.target.id] = nil
        switch wait.kind {
        case let .accept(id):
            listeners[id]?.accepts.removeAll { $0 == waitID }
            if let listener = listeners[id], !listener.isPair, listener.accepts.isEmpty {
                actions.append(.setAccepting(id, false))
            }
        case let .pairConnect(id):
            listeners[id]?.connects.removeAll { $0 == waitID }
        case let .connect(connectID):
            if connects.removeValue(forKey: connectID) != nil { actions.append(.abortConnect(connectID)) }
        }
        let live = waits
        deadlines.discardStale { live[$0] == nil }
        if let answer { actions.append(.reply(wait.target, .error(answer.errorObject))) }
    }

    /// Closes a listener: waiting accepts (its owner's) and pair connects (anyone's) get −32005.
    private mutating func removeListener(_ id: BrokerListenerID) {
        guard let listener = listeners[id] else { return }
        for waitID in listener.accepts + listener.connects { removeWait(waitID, answer: .listenerClosed(id)) }
        listeners[id] = nil
        clients[listener.owner]?.listeners.remove(id)
        if !listener.isPair { actions.append(.closeListener(id)) }
    }
}
