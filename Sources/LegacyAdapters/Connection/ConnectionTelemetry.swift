package import EndpointMuxObservation
public import Logging

/// What connections log (swift-log) and count (swift-metrics): create one per
/// configuration and pass it to every ``ConnectionDriver`` or ``AsyncConnection`` of that
/// configuration (``ServiceServer`` and ``BrokerServer`` make their own from a `logger`).
///
/// Contracts:
/// - **Logging** happens only when `logger` is given; without one no log message is
///   built. Levels: `debug` for connections opened, ended by the peer or the daemon, and
///   epitaphs sent; `notice` for connections that failed (the epitaph's status and reason
///   are in the message and in the metadata `endpointmux.epitaph.status` /
///   `endpointmux.epitaph.reason`), transport errors and refused accepts. Log text is not API.
/// - **Metrics** go to whatever backend the process bootstrapped with
///   `MetricsSystem.bootstrap` (none: swift-metrics' no-ops). The metric objects are made
///   once here, so bootstrap before creating telemetry. Every metric carries
///   `metricsDimensions`. The names are listed in docs/DESIGN.md ("Observability and
///   lifecycle"); counts are added once per batch of I/O, not per message.
/// - Thread-safe: share one instance between connections on any threads.
public final class ConnectionTelemetry: Sendable {
    package let telemetry: MuxTelemetry

    /// The logger given, if any.
    package var logger: Logger? { telemetry.logger }

    /// Creates the metric objects (with `metricsDimensions` on each, e.g.
    /// `[("service", "mydaemon")]`) and keeps `logger` (`nil`: nothing is logged).
    public init(logger: Logger? = nil, metricsDimensions: [(String, String)] = []) {
        telemetry = MuxTelemetry(logger: logger, metrics: MuxMetrics(dimensions: metricsDimensions))
    }
}
