import Glibc

/// The identity file a daemon publishes next to its endpoint, in the exact format
/// running-process writes (serde_json pretty: 2-space indent, LF, no trailing newline,
/// keys in schema order, hashes as arrays of numbers).
package enum IdentityFile {
    /// The file's text for `identity`, byte-identical to the reference's.
    package static func encode(_ identity: DaemonIdentity) -> String {
        func array(_ bytes: [UInt8]) -> String {
            bytes.isEmpty ? "[]" : "[\n" + bytes.map { "    \($0)" }.joined(separator: ",\n") + "\n  ]"
        }
        let legacy =
            identity.legacyExecutableSHA256.count == 32
            ? identity.legacyExecutableSHA256 : [UInt8](repeating: 0, count: 32)
        let idle = identity.idleTimeoutSeconds.map(String.init) ?? "null"
        return """
            {
              "pid": \(identity.pid),
              "exe_path": \(jsonString(identity.executablePath)),
              "exe_hash_algorithm": \(jsonString(identity.executableHashAlgorithm)),
              "exe_hash": \(array(identity.executableHash)),
              "legacy_exe_sha256": \(array(legacy)),
              "boot_id": \(jsonString(identity.bootID)),
              "ipc_endpoint": {
                "namespace_id": \(jsonString(identity.endpoint.namespaceID)),
                "path": \(jsonString(identity.endpoint.path))
              },
              "started_at_unix_ms": \(identity.startedAtUnixMilliseconds),
              "idle_timeout_secs": \(idle)
            }
            """
    }

    /// Writes the identity file atomically: `<path>.tmp` (mode 0666 & umask), then
    /// `rename` over `path`, as the reference does. Creates missing parent directories.
    /// - Throws: ``EndpointMuxError/system(operation:path:errno:)``.
    package static func write(_ identity: DaemonIdentity, to path: String) throws(EndpointMuxError) {
        try FileSystem.makeDirectories(FileSystem.parent(of: path))
        let temporary = path + ".tmp"
        try FileSystem.writeFile(temporary, contents: Array(encode(identity).utf8))
        guard rename(temporary, path) == 0 else {
            let error = errno
            unlink(temporary)
            throw .system(operation: "rename", path: path, errno: error)
        }
    }

    /// Removes the identity file; a missing file is not an error.
    package static func remove(at path: String) {
        unlink(path)
    }

    /// serde_json's string escaping: `"`, `\`, and control characters; nothing else.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Small file-system helpers over the C library (no Foundation in the core), shared with
/// the adapters.
package enum FileSystem {
    /// The directory part of `path` ("." when there is none).
    package static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `mkdir -p` with mode 0777 & umask.
    package static func makeDirectories(_ path: String) throws(EndpointMuxError) {
        if path.isEmpty || path == "." || path == "/" { return }
        var st = stat()
        if stat(path, &st) == 0 { return }
        try makeDirectories(parent(of: path))
        if mkdir(path, 0o777) != 0 && errno != EEXIST {
            throw .system(operation: "mkdir", path: path, errno: errno)
        }
    }

    static func writeFile(_ path: String, contents: [UInt8]) throws(EndpointMuxError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw .system(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        var written = 0
        while written < contents.count {
            let n = contents.withUnsafeBytes { raw in
                systemWrite(fd, raw.baseAddress.map { $0 + written }, raw.count - written)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system(operation: "write", path: path, errno: errno)
            }
            written += n
        }
    }

    /// Reads a whole (small) file.
    static func readFile(_ path: String, limit: Int = 1 << 20) throws(EndpointMuxError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system(operation: "read", path: path, errno: errno)
            }
            if n == 0 { break }
            bytes += chunk[..<n]
        }
        return bytes
    }
}

private let systemWrite = Glibc.write

extension IdentityFile {
    /// Parses an identity file (pretty or compact JSON) as the reference's reader does:
    /// `pid`, `exe_path`, `exe_hash_algorithm` (must be `"blake3"`), `exe_hash` (32
    /// numbers), `boot_id`, `ipc_endpoint` and `started_at_unix_ms` are required;
    /// `legacy_exe_sha256` and `idle_timeout_secs` are optional.
    /// - Throws: ``EndpointMuxError/malformedIdentityFile(path:reason:)``.
    package static func decode(
        _ bytes: [UInt8], path: String = "<identity file>"
    ) throws(EndpointMuxError) -> DaemonIdentity {
        func fail(_ reason: String) -> EndpointMuxError { .malformedIdentityFile(path: path, reason: reason) }
        let parsed = bytes.withUnsafeBytes { raw in Result { () throws(JSONSyntaxError) in try JSONValue(parsing: raw) }
        }
        let root: JSONValue
        switch parsed {
        case let .success(value): root = value
        case let .failure(error): throw fail("not JSON: \(error)")
        }
        guard case .object = root else { throw fail("top level is not an object") }
        func string(_ key: String, in value: JSONValue = root) throws(EndpointMuxError) -> String {
            guard let text = value[key]?.stringValue else { throw fail("\(key) is missing or not a string") }
            return text
        }
        func unsigned(_ key: String, max: UInt64) throws(EndpointMuxError) -> UInt64 {
            guard let number = root[key]?.numberValue?.uint64, number <= max else {
                throw fail("\(key) is missing or not an unsigned integer")
            }
            return number
        }
        func bytes32(_ key: String) throws(EndpointMuxError) -> [UInt8]? {
            guard let value = root[key], value != .null else { return nil }
            guard let array = value.arrayValue, array.count == 32 else {
                throw fail("\(key) is not an array of 32 bytes")
            }
            var out: [UInt8] = []
            for element in array {
                guard let n = element.numberValue?.uint64, n <= 255 else { throw fail("\(key) holds a non-byte") }
                out.append(UInt8(n))
            }
            return out
        }
        let algorithm = try string("exe_hash_algorithm")
        guard algorithm == DaemonIdentity.blake3Algorithm else {
            throw fail("exe_hash_algorithm \"\(algorithm)\" is not blake3")
        }
        guard let hash = try bytes32("exe_hash") else { throw fail("exe_hash is missing") }
        guard let endpoint = root["ipc_endpoint"], case .object = endpoint else {
            throw fail("ipc_endpoint is missing")
        }
        var idle: UInt32?
        if let value = root["idle_timeout_secs"], value != .null {
            guard let n = value.numberValue?.uint64, n <= UInt64(UInt32.max) else {
                throw fail("idle_timeout_secs is invalid")
            }
            idle = UInt32(n)
        }
        return DaemonIdentity(
            pid: UInt32(try unsigned("pid", max: UInt64(UInt32.max))),
            executablePath: try string("exe_path"),
            executableHash: hash,
            executableHashAlgorithm: algorithm,
            bootID: try string("boot_id"),
            endpoint: IPCEndpoint(
                namespaceID: try string("namespace_id", in: endpoint), path: try string("path", in: endpoint)),
            startedAtUnixMilliseconds: try unsigned("started_at_unix_ms", max: .max),
            idleTimeoutSeconds: idle,
            legacyExecutableSHA256: try bytes32("legacy_exe_sha256") ?? [UInt8](repeating: 0, count: 32))
    }

    /// Reads and parses the identity file at `path`.
    package static func read(from path: String) throws(EndpointMuxError) -> DaemonIdentity {
        try decode(FileSystem.readFile(path), path: path)
    }
}
