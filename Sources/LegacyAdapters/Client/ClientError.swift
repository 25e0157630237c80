public import EndpointMux

/// Errors a client sees: connecting, timing out, the peer ending the conversation, or an
/// answer that does not verify.
public enum ClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Connecting failed.
    case connect(ServiceError)
    /// A socket operation failed.
    case transport(TransportError)
    /// No complete answer before the deadline.
    case timedOut
    /// The server closed the connection without an epitaph.
    case peerClosed
    /// The server ended the connection with this epitaph.
    case epitaph(Epitaph)
    /// The server sent bytes that are not a valid frame or message.
    case malformedAnswer(String)
    /// A probe answer or the identity behind it did not verify.
    case verification(ProbeVerificationError)
    /// The expected identity could not be read.
    case identity(IdentityError)

    public var description: String {
        switch self {
        case let .connect(error): return "connect failed: \(error)"
        case let .transport(error): return error.description
        case .timedOut: return "timed out waiting for the answer"
        case .peerClosed: return "peer closed the connection without an epitaph"
        case let .epitaph(epitaph): return "server closed the connection: \(epitaph)"
        case let .malformedAnswer(detail): return "malformed answer: \(detail)"
        case let .verification(error): return error.description
        case let .identity(error): return error.description
        }
    }
}
