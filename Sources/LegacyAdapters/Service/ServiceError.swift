public import EndpointMux

/// Errors of the service layer: binding, identity, running.
public enum ServiceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A live server already answers at `path` (the reference's `ServiceAlreadyRunning`).
    case alreadyRunning(name: String, path: String)
    /// The socket path does not fit in `sun_path`.
    case pathTooLong(String)
    /// A system call failed.
    case system(operation: String, path: String, errno: Int32)
    /// The daemon's identity could not be established or published.
    case identity(IdentityError)

    public var description: String {
        switch self {
        case let .alreadyRunning(name, path): return "service \"\(name)\" is already running at \(path)"
        case let .pathTooLong(path): return "socket path is too long for sun_path (\(path.utf8.count) bytes): \(path)"
        case let .system(operation, path, errno): return "\(operation) \(path): \(String(cString: strerror(errno)))"
        case let .identity(error): return error.description
        }
    }
}

import Glibc
