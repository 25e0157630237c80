/// Errors of the identity layer: reading the executable, boot id, identity files and
/// endpoint paths.
public enum IdentityError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A system call on `path` failed with `errno`.
    case system(operation: String, path: String, errno: Int32)
    /// The identity file at `path` is not in the reference format; `reason` says why.
    case malformedIdentityFile(path: String, reason: String)
    /// A service name outside `[a-z0-9-]{1,64}`.
    case invalidServiceName(String)
    /// A lane a service may not serve (not registered-consumer or private use).
    case invalidServiceLane(PayloadProtocol)

    public var description: String {
        switch self {
        case let .system(operation, path, errno):
            return "\(operation) \(path): errno \(errno)"
        case let .malformedIdentityFile(path, reason):
            return "identity file \(path) is malformed: \(reason)"
        case let .invalidServiceName(name):
            return "service name \"\(name)\" must match [a-z0-9-]{1,64}"
        case let .invalidServiceLane(lane):
            return "payload protocol \(lane) must be in the registered-consumer range (0x7000..=0x7EFF) or private use (0xF000..=0xFFFF)"
        }
    }
}
