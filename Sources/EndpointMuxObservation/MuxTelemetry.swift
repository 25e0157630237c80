package import EndpointMux
package import Logging
import Metrics
import Synchronization

/// Metric names, shared by every adapter (documented in docs/DESIGN.md).
package enum MuxMetricName {
    package static let connectionsOpen = "endpointmux_connections_open"
    package static let connectionsTotal = "endpointmux_connections_total"
    package static let connectionsEnded = "endpointmux_connections_ended_total"
    package static let probesAnswered = "endpointmux_probes_answered_total"
    package static let framesReceived = "endpointmux_frames_received_total"
    package static let controlMessagesReceived = "endpointmux_control_messages_received_total"
    package static let epitaphsSent = "endpointmux_epitaphs_sent_total"
    package static let fileDescriptorsReceived = "endpointmux_fds_received_total"
    package static let fileDescriptorsSent = "endpointmux_fds_sent_total"
    package static let acceptsRefused = "endpointmux_accepts_refused_total"
}

/// The metric objects of one server or configuration: created once, shared by all its
/// connections (a connection only adds to them). With no `MetricsSystem` backend
/// bootstrapped they are swift-metrics' no-op handlers.
package final class MuxMetrics: Sendable {
    /// Why a connection ended, as the `reason` dimension says it.
    package enum EndReason: String, Sendable, CaseIterable {
        case peerClosed = "peer_closed"
        case peerClosedMidMessage = "peer_closed_mid_message"
        case failed
        case closedByDaemon = "closed_by_daemon"
        case transportError = "transport_error"
        /// Sticky legacy: the daemon took the connection over (it is no longer the mux's).
        case legacyTakeover = "legacy_takeover"
    }

    /// Why an accept gave no connection, as the `reason` dimension says it.
    package enum RefusalReason: String, Sendable, CaseIterable {
        /// `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`: the listener backs off.
        case outOfResources = "out_of_resources"
        /// Any other `accept(2)` error.
        case failed
        /// Accepted while the server was stopping: closed at once (with an epitaph).
        case shuttingDown = "shutting_down"
    }

    private let dimensions: [(String, String)]
    let connectionsOpen: Meter
    let connectionsTotal: Counter
    let probesAnswered: Counter
    let fileDescriptorsReceived: Counter
    let fileDescriptorsSent: Counter
    let requests: Counter
    let notifications: Counter
    let responses: Counter
    private let closed: [EndReason: Counter]
    private let refused: [RefusalReason: Counter]
    /// By lane and by status: created on first use (frames arrive on served lanes only,
    /// epitaphs are rare), looked up once per batch.
    private let lanes: Mutex<[UInt32: Counter]>
    private let statuses: Mutex<[Int32: Counter]>

    /// Metric objects with `dimensions` added to every one (e.g. `("service", name)`).
    package init(dimensions: [(String, String)] = []) {
        self.dimensions = dimensions
        connectionsOpen = Meter(label: MuxMetricName.connectionsOpen, dimensions: dimensions)
        connectionsTotal = Counter(label: MuxMetricName.connectionsTotal, dimensions: dimensions)
        probesAnswered = Counter(label: MuxMetricName.probesAnswered, dimensions: dimensions)
        fileDescriptorsReceived = Counter(label: MuxMetricName.fileDescriptorsReceived, dimensions: dimensions)
        fileDescriptorsSent = Counter(label: MuxMetricName.fileDescriptorsSent, dimensions: dimensions)
        requests = Counter(label: MuxMetricName.controlMessagesReceived, dimensions: dimensions + [("kind", "request")])
        notifications = Counter(
            label: MuxMetricName.controlMessagesReceived,
            dimensions: dimensions + [("kind", "notification")])
        responses = Counter(
            label: MuxMetricName.controlMessagesReceived, dimensions: dimensions + [("kind", "response")])
        var closed: [EndReason: Counter] = [:]
        for reason in EndReason.allCases {
            closed[reason] = Counter(
                label: MuxMetricName.connectionsEnded, dimensions: dimensions + [("reason", reason.rawValue)])
        }
        self.closed = closed
        var refused: [RefusalReason: Counter] = [:]
        for reason in RefusalReason.allCases {
            refused[reason] = Counter(
                label: MuxMetricName.acceptsRefused, dimensions: dimensions + [("reason", reason.rawValue)])
        }
        self.refused = refused
        lanes = Mutex([:])
        statuses = Mutex([:])
    }

    func frames(onLane lane: UInt32, count: Int) {
        let counter = lanes.withLock { lanes in
            if let counter = lanes[lane] { return counter }
            let counter = Counter(
                label: MuxMetricName.framesReceived,
                dimensions: dimensions + [("lane", PayloadProtocol(rawValue: lane).description)])
            lanes[lane] = counter
            return counter
        }
        counter.increment(by: Int64(count))
    }

    func epitaph(_ status: EpitaphStatus) {
        let counter = statuses.withLock { statuses in
            if let counter = statuses[status.rawValue] { return counter }
            let counter = Counter(
                label: MuxMetricName.epitaphsSent, dimensions: dimensions + [("status", status.description)])
            statuses[status.rawValue] = counter
            return counter
        }
        counter.increment()
    }

    func closed(_ reason: EndReason) {
        closed[reason]?.increment()
    }

    /// Counts an accept that gave no served connection.
    package func refused(_ reason: RefusalReason) {
        refused[reason]?.increment()
    }
}

/// What one server or configuration logs and counts: the adopter's logger (nil: nothing
/// is logged, and no log message is even built) and the metric objects.
package struct MuxTelemetry: Sendable {
    package var logger: Logger?
    package let metrics: MuxMetrics

    package init(logger: Logger?, metrics: MuxMetrics) {
        self.logger = logger
        self.metrics = metrics
    }

    /// Logs and counts an accept that gave no connection (`errno` for failures).
    package func acceptRefused(_ reason: MuxMetrics.RefusalReason, errno code: Int32 = 0, listener: String) {
        metrics.refused(reason)
        guard let logger else { return }
        switch reason {
        case .outOfResources:
            logger.notice(
                "accept paused: out of file descriptors or memory; retrying after a back-off",
                metadata: ["endpointmux.listener": "\(listener)", "errno": "\(code)"])
        case .failed:
            logger.notice("accept failed", metadata: ["endpointmux.listener": "\(listener)", "errno": "\(code)"])
        case .shuttingDown:
            logger.debug("connection refused: shutting down", metadata: ["endpointmux.listener": "\(listener)"])
        }
    }
}

/// One connection's observer: counts what its adapter executes in plain integers and
/// adds them to the shared metric objects once per batch (``flush(_:transportError:)``);
/// logs the connection's end with its reason. The adapter holds it as an optional, so a connection
/// without telemetry pays one `nil` check per batch.
package struct ConnectionObserver: Sendable {
    private let telemetry: MuxTelemetry
    private let connection: String
    private var lane: UInt32 = 0
    private var laneFrames = 0
    private var requests = 0
    private var notifications = 0
    private var responses = 0
    private var fileDescriptorsReceived = 0
    private var fileDescriptorsSent = 0
    private var sentEpitaph: Epitaph?
    private var pendingEnd: ConnectionStateMachine.End?
    private var ended = false
    private var takenOver = false

    /// A connection opened (counted now); `connection` names it in log metadata.
    package init(telemetry: MuxTelemetry, connection: String) {
        self.telemetry = telemetry
        self.connection = connection
        telemetry.metrics.connectionsOpen.increment()
        telemetry.metrics.connectionsTotal.increment()
        telemetry.logger?.debug("connection opened", metadata: ["endpointmux.connection": "\(connection)"])
    }

    /// Counts one action the adapter is executing (cheap: integer adds).
    @inline(__always)
    package mutating func observe(_ action: ConnectionStateMachine.Action) {
        switch action {
        case let .deliver(.payload(frame)):
            let raw = frame.payloadProtocol.rawValue
            if raw != lane, laneFrames > 0 { flushFrames() }
            lane = raw
            laneFrames += 1
        case let .deliver(.control(message, count)):
            fileDescriptorsReceived += count
            switch message {
            case .request: requests += 1
            case .notification: notifications += 1
            case .response: responses += 1
            }
        case let .write(_, count):
            fileDescriptorsSent += count
        case let .deliver(.closed(end)):
            pendingEnd = end
        case .deliver(.legacyTakeover):
            takenOver = true
        default:
            break
        }
    }

    private mutating func flushFrames() {
        telemetry.metrics.frames(onLane: lane, count: laneFrames)
        laneFrames = 0
    }

    /// Adds the batch's counts and the machine's own `observations` (probes answered, the
    /// epitaph) to the metrics; if the batch ended the connection, counts and logs the end
    /// with its reason (`notice` for a failure or a transport error, `debug` otherwise).
    /// `transportError` describes a failed system call, asked for only when it is logged.
    package mutating func flush(
        _ observations: ConnectionStateMachine.Observations,
        transportError: @autoclosure () -> String? = nil
    ) {
        let metrics = telemetry.metrics
        if laneFrames > 0 { flushFrames() }
        if observations.probesAnswered > 0 { metrics.probesAnswered.increment(by: Int64(observations.probesAnswered)) }
        if requests > 0 { metrics.requests.increment(by: Int64(requests)); requests = 0 }
        if notifications > 0 { metrics.notifications.increment(by: Int64(notifications)); notifications = 0 }
        if responses > 0 { metrics.responses.increment(by: Int64(responses)); responses = 0 }
        if fileDescriptorsReceived > 0 {
            metrics.fileDescriptorsReceived.increment(by: Int64(fileDescriptorsReceived))
            fileDescriptorsReceived = 0
        }
        if fileDescriptorsSent > 0 {
            metrics.fileDescriptorsSent.increment(by: Int64(fileDescriptorsSent))
            fileDescriptorsSent = 0
        }
        if let epitaph = observations.epitaph {
            sentEpitaph = epitaph
            metrics.epitaph(epitaph.status)
            telemetry.logger?.debug(
                "epitaph sent",
                metadata: [
                    "endpointmux.connection": "\(connection)", "endpointmux.epitaph.status": "\(epitaph.status)",
                    "endpointmux.epitaph.reason": "\(epitaph.reason)",
                ])
        }
        if let end = pendingEnd, !ended {
            ended = true
            closed(end, transportError: transportError())
        } else if takenOver, !ended {
            ended = true
            metrics.connectionsOpen.decrement()
            metrics.closed(.legacyTakeover)
            telemetry.logger?.debug(
                "connection taken over by the daemon's legacy protocol",
                metadata: ["endpointmux.connection": "\(connection)"])
        }
    }

    /// The adapter let go of the connection without an end (e.g. a driver released by
    /// the daemon): it no longer counts as open.
    package mutating func released() {
        guard !ended else { return }
        ended = true
        telemetry.metrics.connectionsOpen.decrement()
    }

    private func closed(_ end: ConnectionStateMachine.End, transportError: String?) {
        let metrics = telemetry.metrics
        metrics.connectionsOpen.decrement()
        let reason: MuxMetrics.EndReason
        let detail: String
        switch end {
        case .peerClosed:
            reason = .peerClosed
            detail = "peer closed (end of input)"
        case let .peerClosedMidMessage(count):
            reason = .peerClosedMidMessage
            detail = "peer closed (end of input) inside a message, \(count) bytes buffered"
        case .failed(nil):
            reason = .failed
            detail = "failed (no epitaph: legacy peer)"
        case let .failed(epitaph?):
            reason = .failed
            detail = "failed: epitaph \(epitaph.status): \(epitaph.reason)"
        case .closedByDaemon:
            reason = .closedByDaemon
            detail =
                sentEpitaph.map { "closed by the daemon: epitaph \($0.status): \($0.reason)" } ?? "closed by the daemon"
        case .transportFailed:
            reason = .transportError
            detail = "transport error: \(transportError ?? "a system call failed")"
        }
        metrics.closed(reason)
        guard let logger = telemetry.logger else { return }
        var metadata: Logger.Metadata = [
            "endpointmux.connection": "\(connection)", "endpointmux.end": "\(reason.rawValue)",
        ]
        if let epitaph = sentEpitaph {
            metadata["endpointmux.epitaph.status"] = "\(epitaph.status)"
            metadata["endpointmux.epitaph.reason"] = "\(epitaph.reason)"
        }
        switch reason {
        case .failed, .transportError:
            logger.notice("connection ended: \(detail)", metadata: metadata)
        case .peerClosed, .peerClosedMidMessage, .closedByDaemon, .legacyTakeover:
            logger.debug("connection ended: \(detail)", metadata: metadata)
        }
    }
}
