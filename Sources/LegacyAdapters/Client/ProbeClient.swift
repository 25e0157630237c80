@_spi(Internals) public import EndpointMux
import Glibc

/// An identity verified by ``ProbeClient``.
public struct VerifiedIdentity: Hashable, Sendable {
    /// The identity the server proved.
    public var identity: DaemonIdentity
    /// The pid the kernel reports for the socket's peer (`SO_PEERCRED`).
    public var peerProcessID: Int32
    /// Round-trip time of the probe.
    public var roundTrip: Duration
}

/// Probes an endpoint and verifies the identity behind it.
///
/// With an expected identity (from the daemon's identity file) it checks what
/// running-process's client checks — before connecting: pid alive, `/proc/<pid>/exe` is
/// the file's `exe_path`, BLAKE3 of that file equals `exe_hash`, same boot; then the probe
/// answer: nonce, request id, kind, lane, and pid, exe path, hash, boot id and endpoint
/// equal to the file's — and, beyond the reference, that `SO_PEERCRED` names that pid.
/// Without one it verifies the answer itself: nonce, request id, the claimed pid is the
/// `SO_PEERCRED` pid, and that process's executable has the claimed path and hash.
public enum ProbeClient {
    /// Probes the Unix socket at `socketPath`.
    /// - Parameters:
    ///   - socketPath: the server's unix socket.
    ///   - expected: the identity the server must prove (e.g. read from its identity file).
    ///   - timeout: one deadline for connect, write and read (the reference client: ~1 s);
    ///     a server that never accepts gives an `EndpointMuxError` with code
    ///     `connectFailed` and errno `ETIMEDOUT` once it has passed.
    public static func probe(
        socketPath: String, expected: DaemonIdentity? = nil, timeout: Duration = .seconds(1)
    ) throws(EndpointMuxError) -> VerifiedIdentity {
        if let expected {
            guard expected.endpoint.path == socketPath else {
                throw .verification(
                    .identityMismatch(
                        field: "ipc_endpoint.path", expected: socketPath,
                        received: expected.endpoint.path))
            }
            try verifyProcess(expected)
        }
        let start = ContinuousClock.now
        let deadline = start + timeout
        let client = try FrameClient(socketPath: socketPath, connectDeadline: deadline)
        let request = ProbeRequest.random()
        let bytes: [UInt8]
        do { bytes = try request.frame.encoded() } catch { throw .malformedAnswer(error.description) }
        try client.write(bytes, deadline: deadline)
        let answer = try client.readFrame(deadline: deadline)
        let roundTrip = start.duration(to: .now)
        let response: ProbeResponse
        do { response = try ProbeResponse(validating: answer, for: request) } catch { throw .verification(error) }
        let claimed = response.identity
        let peer = try client.peerProcessID()
        if let expected {
            try compare("pid", expected.pid, claimed.pid)
            try compare("exe_path", expected.executablePath, claimed.executablePath)
            try compare("exe_hash", expected.executableHashHex, claimed.executableHashHex)
            try compare("boot_id", expected.bootID, claimed.bootID)
            try compare("ipc_endpoint.namespace_id", expected.endpoint.namespaceID, claimed.endpoint.namespaceID)
            try compare("ipc_endpoint.path", expected.endpoint.path, claimed.endpoint.path)
        } else {
            try verifyProcess(claimed)
        }
        guard UInt32(clamping: peer) == claimed.pid else {
            throw .verification(
                .identityMismatch(field: "SO_PEERCRED pid", expected: "\(claimed.pid)", received: "\(peer)"))
        }
        return VerifiedIdentity(identity: claimed, peerProcessID: peer, roundTrip: roundTrip)
    }

    /// The reference's `verify_daemon_process`: pid valid and alive, same boot, the
    /// running executable is `exe_path`, and its BLAKE3 is `exe_hash`.
    package static func verifyProcess(_ identity: DaemonIdentity) throws(EndpointMuxError) {
        guard identity.pid != 0, identity.pid <= UInt32(Int32.max) else {
            throw .verification(.processCheckFailed("pid \(identity.pid) is not a valid pid"))
        }
        let pid = Int32(identity.pid)
        let currentBoot = ProcessFacts.bootID()
        if !identity.bootID.isEmpty, !currentBoot.isEmpty, identity.bootID != currentBoot {
            throw .verification(.processCheckFailed("boot id \(identity.bootID) is not this boot (\(currentBoot))"))
        }
        guard ProcessFacts.isAlive(pid) else {
            throw .verification(.processCheckFailed("process \(pid) is not running"))
        }
        let running: String
        let claimed: String
        do {
            running = try ProcessFacts.executablePath(of: pid)
            claimed = try ProcessFacts.canonicalPath(identity.executablePath)
        } catch {
            throw .verification(.processCheckFailed("cannot resolve the executable: \(error)"))
        }
        guard running == claimed else {
            throw .verification(.identityMismatch(field: "exe_path", expected: running, received: claimed))
        }
        let hash: [UInt8]
        do { hash = try BLAKE3.hash(fileAtPath: claimed) } catch { throw .identity(error) }
        guard hash == identity.executableHash else {
            throw .verification(
                .identityMismatch(
                    field: "exe_hash", expected: DaemonIdentity.hex(hash), received: identity.executableHashHex))
        }
    }

    private static func compare<T: Equatable & CustomStringConvertible>(
        _ field: String, _ expected: T, _ received: T
    )
        throws(EndpointMuxError)
    {
        guard expected == received else {
            throw .verification(
                .identityMismatch(field: field, expected: expected.description, received: received.description))
        }
    }
}
