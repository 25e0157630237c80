public import LegacyAdapters
public import ServiceLifecycle

/// A `ServiceServer` (module `LegacyAdapters`) as a swift-service-lifecycle `Service`, for a
/// `ServiceGroup`:
///
/// ```swift
/// let server = try ServiceServer(name: "mydaemon", socketPath: path, identityPath: nil,
///                                servedProtocols: [0x7A63], logger: logger) { $0.payload }
/// let group = ServiceGroup(services: [ServiceServerService(server, drainTimeout: .seconds(2))],
///                          gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// Contracts:
/// - The server serves from its `init` (it is bound and answering before the group
///   starts); ``run()`` owns its **end**: it suspends until the group's graceful shutdown
///   (or the task's cancellation), then stops the server with
///   `ServiceServer.shutdown(drainTimeout:)`: no more connections are
///   accepted, every connected client gets an `UNAVAILABLE` epitaph and is drained within
///   `drainTimeout` (plus 500 ms for connections that do not close), the identity file
///   and the socket are removed, and ``run()`` returns.
/// - No thread is blocked: the stop suspends the task while the server's event loops and
///   threads do the work.
/// - Cancellation stops the server the same way and does not shorten the drain.
/// - The server cannot be restarted: running a second time (or after the server was
///   stopped elsewhere) only waits for shutdown and returns.
public struct ServiceServerService: Service {
    /// The server this service stops.
    package let server: ServiceServer
    /// How long connected clients have to read their epitaph and close.
    package let drainTimeout: Duration

    /// Wraps `server`, which is already serving.
    public init(_ server: ServiceServer, drainTimeout: Duration = .seconds(1)) {
        self.server = server
        self.drainTimeout = drainTimeout
    }

    /// Serves until graceful shutdown or cancellation, then stops the server and returns
    /// once it drained (see the type's contracts). Never throws.
    public func run() async throws {
        try? await gracefulShutdown()  // returns on graceful shutdown; throws on cancellation
        await server.shutdown(drainTimeout: drainTimeout)
    }
}

/// A `BrokerServer` (module `LegacyAdapters`) as a swift-service-lifecycle `Service`, with the same
/// contracts as ``ServiceServerService``: ``run()`` suspends until graceful shutdown or
/// cancellation, then stops the broker (clients get an `UNAVAILABLE` epitaph and are
/// drained within `drainTimeout`; listeners and connects in progress are closed; the
/// socket is removed) on a thread of the broker's own, and returns.
public struct BrokerServerService: Service {
    /// The broker this service stops.
    package let broker: BrokerServer
    /// How long connected clients have to read their epitaph and close.
    package let drainTimeout: Duration

    /// Wraps `broker`, which is already serving.
    public init(_ broker: BrokerServer, drainTimeout: Duration = .seconds(1)) {
        self.broker = broker
        self.drainTimeout = drainTimeout
    }

    /// Serves until graceful shutdown or cancellation, then stops the broker and returns
    /// once it drained. Never throws.
    public func run() async throws {
        try? await gracefulShutdown()
        await broker.shutdown(drainTimeout: drainTimeout)
    }
}
