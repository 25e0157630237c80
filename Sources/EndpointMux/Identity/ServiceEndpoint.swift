/// The running-process service path rules (`native_service_paths`): where a named
/// service's socket and identity file live.
///
/// Pure string functions of the inputs and an environment snapshot, so a Swift client
/// and a Swift or Python server agree exactly. Note the rules' sharp edges, kept on
/// purpose for compatibility: the runtime directory string is hashed verbatim (a trailing
/// slash changes the tag), and an empty or relative `XDG_RUNTIME_DIR` gives a relative
/// socket path.
package struct ServiceEndpoint: Hashable, Sendable {
    /// The service name (`[a-z0-9-]{1,64}`).
    package var name: String
    /// The socket path.
    package var socketPath: String
    /// The identity file path.
    package var identityPath: String

    /// The environment variables the rules read.
    package struct Environment: Hashable, Sendable {
        /// `$XDG_RUNTIME_DIR`, `nil` when unset.
        package var xdgRuntimeDir: String?
        /// `$XDG_DATA_HOME`, `nil` when unset.
        package var xdgDataHome: String?
        /// `$HOME`, `nil` when unset.
        package var home: String?
        /// The real user id.
        package var uid: UInt32

        /// Creates an environment snapshot.
        package init(xdgRuntimeDir: String?, xdgDataHome: String?, home: String?, uid: UInt32) {
            self.xdgRuntimeDir = xdgRuntimeDir
            self.xdgDataHome = xdgDataHome
            self.home = home
            self.uid = uid
        }
    }

    /// Computes the paths for `name` under the optional `runtimeDirectory`.
    /// - Throws: ``EndpointMuxError/invalidServiceName(_:)`` for a name outside `[a-z0-9-]{1,64}`.
    package init(name: String, runtimeDirectory: String?, environment: Environment) throws(EndpointMuxError) {
        guard Self.isValidName(name) else { throw .invalidServiceName(name) }
        self.name = name
        let root: String
        if let xdg = environment.xdgRuntimeDir {
            root = Self.join(xdg, "running-process")
        } else {
            root = "/tmp/running-process-\(environment.uid)"
        }
        let tag = runtimeDirectory.map { Self.fnv1a32Hex($0) } ?? "default"
        self.socketPath = Self.join(Self.join(root, "broker-v2"), "rp-svc-\(name)-\(tag).sock")
        if let runtimeDirectory {
            self.identityPath = Self.join(runtimeDirectory, name + ".identity.json")
        } else {
            let base: String
            if let xdg = environment.xdgRuntimeDir, xdg.hasPrefix("/") {
                base = xdg
            } else if let data = environment.xdgDataHome, data.hasPrefix("/") {
                base = data
            } else {
                base = Self.join(environment.home ?? "", ".local/share")
            }
            self.identityPath = Self.join(
                Self.join(Self.join(base, "running-process"), "services"),
                name + ".identity.json")
        }
    }

    /// Whether `name` matches `[a-z0-9-]{1,64}`.
    package static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return (1...64).contains(bytes.count)
            && bytes.allSatisfy {
                ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z"))
                    || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || $0 == UInt8(ascii: "-")
            }
    }

    /// FNV-1a 32 of the string's UTF-8 bytes as 8 lower-case hex digits.
    package static func fnv1a32Hex(_ text: String) -> String {
        var hash: UInt32 = 0x811C_9DC5
        for byte in text.utf8 {
            hash = (hash ^ UInt32(byte)) &* 0x0100_0193
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// Path join with Rust `Path::join` / Python `os.path.join` semantics for these
    /// inputs: an absolute component replaces, an empty base gives the component alone,
    /// and a base's trailing slash is not doubled.
    static func join(_ base: String, _ component: String) -> String {
        if component.hasPrefix("/") || base.isEmpty { return component }
        return base.hasSuffix("/") ? base + component : base + "/" + component
    }
}
