/// Every error EndpointMux's public API throws: a ``code`` to match on, a human-readable
/// ``reason``, and the context that belongs to the code — the failed system call
/// (``systemCall``, ``path``, ``errno``), the ``epitaph`` a server sent, or the JSON-RPC
/// error object a peer answered (``rpcError``).
///
/// One shape for every layer: an error that happened while connecting, verifying an
/// identity or moving bytes is not wrapped in another error; where it happened is part of
/// the ``reason``. Match on ``code``, never on ``reason`` (its wording may change):
///
/// ```swift
/// do { _ = try ProbeClient.probe(socketPath: path) }
/// catch where error.code == .timedOut { … }
/// ```
///
/// New codes may be added in a minor version, so a `switch` over codes needs a `default`.
public struct EndpointMuxError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Compare with the static members (`==`, `~=`).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// A system call failed: see ``EndpointMuxError/systemCall``, ``EndpointMuxError/errno``
        /// and ``EndpointMuxError/path``.
        public static let systemCallFailed = Code("systemCallFailed")
        /// The connection to the endpoint could not be made (``EndpointMuxError/systemCall``
        /// and ``EndpointMuxError/errno`` say why, e.g. `connect` `ENOENT` or `ECONNREFUSED`).
        public static let connectFailed = Code("connectFailed")
        /// Another live process already serves this name at this socket path.
        public static let alreadyRunning = Code("alreadyRunning")
        /// An argument is invalid: a socket path longer than `sun_path`, a service name
        /// outside `[a-z0-9-]{1,64}`, a payload protocol outside the allowed ranges, too
        /// many fds for one message.
        public static let invalidArgument = Code("invalidArgument")
        /// An identity file did not parse.
        public static let malformedIdentityFile = Code("malformedIdentityFile")
        /// The peer closed the connection before answering (without an epitaph).
        public static let peerClosed = Code("peerClosed")
        /// The operation did not finish before its deadline.
        public static let timedOut = Code("timedOut")
        /// The server ended the connection with an epitaph (``EndpointMuxError/epitaph``).
        public static let epitaph = Code("epitaph")
        /// The peer's answer did not follow the protocol.
        public static let malformedAnswer = Code("malformedAnswer")
        /// A probe answer, or the identity it claims, failed verification.
        public static let verificationFailed = Code("verificationFailed")
        /// File descriptors sent by the peer were dropped by the kernel (`MSG_CTRUNC`); the
        /// ones that arrived were closed.
        public static let fileDescriptorsDropped = Code("fileDescriptorsDropped")
        /// The peer answered a JSON-RPC error (``EndpointMuxError/rpcError``).
        public static let rejected = Code("rejected")
        /// The broker's policy does not allow the request.
        public static let permissionDenied = Code("permissionDenied")
        /// The broker does not know the listener, or it closed while the request waited.
        public static let unknownListener = Code("unknownListener")
        /// A limit of the peer was reached (too many listeners, waiting requests…).
        public static let limitExceeded = Code("limitExceeded")
        /// The request was cancelled.
        public static let cancelled = Code("cancelled")

        /// The code's name, e.g. `timedOut`.
        public var description: String { name }
    }

    /// What kind of failure this is.
    public var code: Code { storage.code }
    /// What went wrong, for people (wording may change between versions).
    public var reason: String { storage.reason }
    /// The system call that failed, when ``code`` is ``Code/systemCallFailed``
    /// (or a remote one the broker reports).
    public var systemCall: String? { storage.systemCall }
    /// The file path involved, if any.
    public var path: String? { storage.path }
    /// The `errno` of the failed system call, if any.
    public var errno: Int32? { storage.errno }
    /// The epitaph the server sent, when ``code`` is ``Code/epitaph``.
    public var epitaph: Epitaph? { storage.epitaph }
    /// The JSON-RPC error the peer answered, when there is one.
    public var rpcError: JSONRPCErrorObject? { storage.rpcError }

    /// The fields, in one immutable box: the error is one word wherever it travels (typed
    /// throws, `Result`s, a connection's end), not the size of all its context.
    private let storage: Storage

    private final class Storage: Hashable, Sendable {
        let code: Code
        let reason: String
        let systemCall: String?
        let path: String?
        let errno: Int32?
        let epitaph: Epitaph?
        let rpcError: JSONRPCErrorObject?

        init(
            code: Code, reason: String, systemCall: String?, path: String?, errno: Int32?, epitaph: Epitaph?,
            rpcError: JSONRPCErrorObject?
        ) {
            self.code = code
            self.reason = reason
            self.systemCall = systemCall
            self.path = path
            self.errno = errno
            self.epitaph = epitaph
            self.rpcError = rpcError
        }

        static func == (lhs: Storage, rhs: Storage) -> Bool {
            lhs === rhs
                || (lhs.code == rhs.code && lhs.reason == rhs.reason && lhs.systemCall == rhs.systemCall
                    && lhs.path == rhs.path && lhs.errno == rhs.errno && lhs.epitaph == rhs.epitaph
                    && lhs.rpcError == rhs.rpcError)
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(code)
            hasher.combine(reason)
            hasher.combine(errno)
        }
    }

    package init(
        _ code: Code, _ reason: String, systemCall: String? = nil, path: String? = nil, errno: Int32? = nil,
        epitaph: Epitaph? = nil, rpcError: JSONRPCErrorObject? = nil
    ) {
        storage = Storage(
            code: code, reason: reason, systemCall: systemCall, path: path, errno: errno, epitaph: epitaph,
            rpcError: rpcError)
    }

    /// The ``reason``.
    public var description: String { reason }

    /// Matches an error by its code: `catch EndpointMuxError.Code.timedOut`.
    public static func ~= (pattern: Code, value: EndpointMuxError) -> Bool { value.code == pattern }

    /// The same error with `context` in front of its reason (where it happened).
    package func during(_ context: String) -> EndpointMuxError {
        EndpointMuxError(
            code, "\(context): \(reason)", systemCall: systemCall, path: path, errno: errno,
            epitaph: epitaph, rpcError: rpcError)
    }
}

// MARK: - Constructors the SDK throws (package: the shapes of one error, not API)

extension EndpointMuxError {
    /// `operation` failed with `errno` (on `path`, if not empty).
    package static func system(operation: String, path: String = "", errno code: Int32) -> EndpointMuxError {
        let name = ErrnoName.name(of: code)
        let target = path.isEmpty ? "" : " \(path)"
        return EndpointMuxError(
            .systemCallFailed, "\(operation)\(target): \(name) (\(ErrnoName.message(of: code)))",
            systemCall: operation, path: path.isEmpty ? nil : path, errno: code)
    }

    package static func alreadyRunning(name: String, path: String) -> EndpointMuxError {
        EndpointMuxError(.alreadyRunning, "service \"\(name)\" is already running at \(path)", path: path)
    }

    package static func pathTooLong(_ path: String) -> EndpointMuxError {
        EndpointMuxError(
            .invalidArgument, "socket path is too long for sun_path (\(path.utf8.count) bytes): \(path)",
            path: path)
    }

    package static func malformedIdentityFile(path: String, reason: String) -> EndpointMuxError {
        EndpointMuxError(.malformedIdentityFile, "identity file \(path) is malformed: \(reason)", path: path)
    }

    package static func invalidServiceName(_ name: String) -> EndpointMuxError {
        EndpointMuxError(.invalidArgument, "service name \"\(name)\" must match [a-z0-9-]{1,64}")
    }

    package static func invalidServiceLane(_ lane: PayloadProtocol) -> EndpointMuxError {
        EndpointMuxError(
            .invalidArgument,
            "payload protocol \(lane) must be in the registered-consumer range "
                + "(0x7000..=0x7EFF) or private use (0xF000..=0xFFFF)")
    }

    package static func invalidArgument(_ reason: String) -> EndpointMuxError {
        EndpointMuxError(.invalidArgument, reason)
    }

    package static func fileDescriptorBatchRejected(count: Int, errno code: Int32) -> EndpointMuxError {
        EndpointMuxError(
            .systemCallFailed,
            "sendmsg refused \(count) file descriptors in one call: "
                + ErrnoName.name(of: code), systemCall: batchRejectionCall, errno: code)
    }

    private static let batchRejectionCall = "sendmsg(SCM_RIGHTS)"

    /// The kernel refused a batch of fds in one `sendmsg` (a smaller batch may pass).
    package var isFileDescriptorBatchRejection: Bool { systemCall == Self.batchRejectionCall }

    package static func controlTruncated(received: Int) -> EndpointMuxError {
        EndpointMuxError(
            .fileDescriptorsDropped,
            "recvmsg control data truncated (MSG_CTRUNC): file descriptors "
                + "were dropped; the \(received) that arrived were closed")
    }

    package static let peerClosed = EndpointMuxError(.peerClosed, "the peer closed the connection without an epitaph")

    package static let timedOut = EndpointMuxError(.timedOut, "timed out waiting for the answer")

    package static func timedOut(operation: String) -> EndpointMuxError {
        EndpointMuxError(.timedOut, "\(operation) timed out")
    }

    package static func epitaph(_ epitaph: Epitaph) -> EndpointMuxError {
        EndpointMuxError(.epitaph, "server closed the connection: \(epitaph)", epitaph: epitaph)
    }

    package static func malformedAnswer(_ detail: String) -> EndpointMuxError {
        EndpointMuxError(.malformedAnswer, "malformed answer: \(detail)")
    }

    package static func rejected(_ object: JSONRPCErrorObject) -> EndpointMuxError {
        EndpointMuxError(.rejected, "error \(object.code): \(object.message)", rpcError: object)
    }

    /// An error answer of the broker, by its JSON-RPC code.
    package static func broker(_ error: BrokerError) -> EndpointMuxError {
        let object = error.errorObject
        switch error {
        case .permissionDenied: return EndpointMuxError(.permissionDenied, error.description, rpcError: object)
        case .unknownListener, .listenerClosed:
            return EndpointMuxError(.unknownListener, error.description, rpcError: object)
        case let .system(_, code, _):
            return EndpointMuxError(.systemCallFailed, error.description, errno: code, rpcError: object)
        case .timedOut: return EndpointMuxError(.timedOut, error.description, rpcError: object)
        case .limitExceeded: return EndpointMuxError(.limitExceeded, error.description, rpcError: object)
        case .cancelled: return EndpointMuxError(.cancelled, error.description, rpcError: object)
        case .decode, .duplicateRequestID: return EndpointMuxError(.rejected, error.description, rpcError: object)
        }
    }

    /// A frame that could not be encoded (too large for the cap, a field out of range).
    package static func framing(_ error: FramingError) -> EndpointMuxError {
        if case .frameTooLarge = error { return EndpointMuxError(.limitExceeded, error.description) }
        return EndpointMuxError(.invalidArgument, error.description)
    }

    /// Flattening wrappers: where the error happened goes into the reason, not a new layer.
    package static func connect(_ error: EndpointMuxError) -> EndpointMuxError {
        guard error.code != .timedOut else { return error.during("connect") }
        return EndpointMuxError(
            .connectFailed, "connect: \(error.reason)", systemCall: error.systemCall,
            path: error.path, errno: error.errno)
    }
    package static func transport(_ error: EndpointMuxError) -> EndpointMuxError { error }
    package static func identity(_ error: EndpointMuxError) -> EndpointMuxError { error }
    package static func verification(_ error: EndpointMuxError) -> EndpointMuxError { error }
    package static func client(_ error: EndpointMuxError) -> EndpointMuxError { error }

    // Probe verification.
    package static func badEnvelope(_ detail: String) -> EndpointMuxError {
        EndpointMuxError(.verificationFailed, "probe answer has a bad envelope: \(detail)")
    }
    package static func requestIDMismatch(expected: UInt64, received: UInt64) -> EndpointMuxError {
        EndpointMuxError(.verificationFailed, "probe answer echoes request id \(received), expected \(expected)")
    }
    package static let nonceMismatch = EndpointMuxError(.verificationFailed, "probe answer does not echo the nonce")
    package static func undecodableIdentity(_ detail: String) -> EndpointMuxError {
        EndpointMuxError(.verificationFailed, "probe answer's DaemonProcess is invalid: \(detail)")
    }
    package static func identityMismatch(field: String, expected: String, received: String) -> EndpointMuxError {
        EndpointMuxError(.verificationFailed, "identity mismatch in \(field): expected \(expected), got \(received)")
    }
    package static func processCheckFailed(_ detail: String) -> EndpointMuxError {
        EndpointMuxError(.verificationFailed, "process check failed: \(detail)")
    }
}
