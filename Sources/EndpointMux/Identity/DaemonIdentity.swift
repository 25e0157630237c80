import CProtobuf

/// Where a daemon can be reached: `DaemonProcess.ipc_endpoint`.
public struct IPCEndpoint: Hashable, Sendable {
    /// Namespace id; the running-process service API writes the service name here.
    public var namespaceID: String
    /// Socket path (or pipe name, or loopback address).
    public var path: String

    /// Creates an endpoint.
    public init(namespaceID: String, path: String) {
        self.namespaceID = namespaceID
        self.path = path
    }
}

/// Who serves an endpoint: the identity a daemon proves in answers to identity probes and
/// publishes in its identity file (`DaemonProcess` on the wire).
public struct DaemonIdentity: Hashable, Sendable {
    /// The value of ``executableHashAlgorithm`` every current peer requires.
    @usableFromInline package static let blake3Algorithm = "blake3"

    /// Process id of the daemon.
    public var pid: UInt32
    /// Canonical path of the daemon's executable (`/proc/<pid>/exe` after resolving).
    public var executablePath: String
    /// Name of the hash in ``executableHash``; `"blake3"`.
    package var executableHashAlgorithm: String
    /// BLAKE3-256 of the executable file's bytes (32 bytes).
    public var executableHash: [UInt8]
    /// `/proc/sys/kernel/random/boot_id` when the daemon started; may be empty.
    public var bootID: String
    /// The endpoint the daemon serves.
    public var endpoint: IPCEndpoint
    /// Wall-clock milliseconds at bind; peers do not compare it.
    public var startedAtUnixMilliseconds: UInt64
    /// Idle timeout, when the daemon has one (field 7; absent when `nil`).
    package var idleTimeoutSeconds: UInt32?
    /// The pre-BLAKE3 SHA-256 slot (probe tail and identity file); 32 zero bytes, as the
    /// reference writes.
    package var legacyExecutableSHA256: [UInt8]

    /// Creates an identity from its parts.
    @_spi(Internals) public init(
        pid: UInt32,
        executablePath: String,
        executableHash: [UInt8],
        executableHashAlgorithm: String = DaemonIdentity.blake3Algorithm,
        bootID: String,
        endpoint: IPCEndpoint,
        startedAtUnixMilliseconds: UInt64,
        idleTimeoutSeconds: UInt32? = nil,
        legacyExecutableSHA256: [UInt8] = [UInt8](repeating: 0, count: 32)
    ) {
        self.pid = pid
        self.executablePath = executablePath
        self.executableHashAlgorithm = executableHashAlgorithm
        self.executableHash = executableHash
        self.bootID = bootID
        self.endpoint = endpoint
        self.startedAtUnixMilliseconds = startedAtUnixMilliseconds
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.legacyExecutableSHA256 = legacyExecutableSHA256
    }

    /// `DaemonProcess` as libprotobuf-c packs it: fields 1, 2, 4, 5, 6, (7), 8, 9, proto3
    /// defaults omitted (no legacy tail; see ``ProbeResponder``).
    package func encodedDaemonProcess() -> [UInt8] {
        var endpointMessage = Endpointmux__V1__Endpoint()
        endpointmux__v1__endpoint__init(&endpointMessage)
        var message = Endpointmux__V1__DaemonProcess()
        endpointmux__v1__daemon_process__init(&message)
        message.has_pid = pid != 0 ? 1 : 0
        message.pid = pid
        message.has_started_at_unix_ms = startedAtUnixMilliseconds != 0 ? 1 : 0
        message.started_at_unix_ms = startedAtUnixMilliseconds
        if let idle = idleTimeoutSeconds {
            message.has_idle_timeout_secs = 1
            message.idle_timeout_secs = idle
        }
        return ProtobufC.withOptionalCString(executablePath) { exePath in
            ProtobufC.withOptionalCString(bootID) { boot in
                ProtobufC.withOptionalCString(executableHashAlgorithm) { algorithm in
                    ProtobufC.withOptionalCString(endpoint.namespaceID) { namespace in
                        ProtobufC.withOptionalCString(endpoint.path) { path in
                            executableHash.withUnsafeBufferPointer { hash in
                                message.exe_path = exePath
                                message.boot_id = boot
                                message.exe_hash_algorithm = algorithm
                                message.has_exe_hash = hash.isEmpty ? 0 : 1
                                message.exe_hash = ProtobufCBinaryData(
                                    len: hash.count, data: UnsafeMutablePointer(mutating: hash.baseAddress))
                                endpointMessage.namespace_id = namespace
                                endpointMessage.path = path
                                return withUnsafeMutablePointer(to: &endpointMessage) { endpointPointer in
                                    message.ipc_endpoint = endpointPointer
                                    let size = endpointmux__v1__daemon_process__get_packed_size(&message)
                                    return [UInt8](unsafeUninitializedCapacity: size) { out, count in
                                        count =
                                            out.baseAddress.map {
                                                endpointmux__v1__daemon_process__pack(&message, $0)
                                            } ?? 0
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Decodes a `DaemonProcess` with libprotobuf-c. A trailing legacy tail (tag 3) is
    /// accepted and ignored; a missing endpoint decodes as empty strings.
    /// - Throws: ``FramingError/undecodableMessage(type:reason:)``.
    @_spi(Internals) public init(parsingDaemonProcess bytes: UnsafeRawBufferPointer) throws(FramingError) {
        let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        guard let message = endpointmux__v1__daemon_process__unpack(nil, bytes.count, base) else {
            throw .undecodableMessage(type: "DaemonProcess", reason: "libprotobuf-c rejected the bytes")
        }
        defer { endpointmux__v1__daemon_process__free_unpacked(message, nil) }
        let m = message.pointee
        var namespace: String? = ""
        var path: String? = ""
        if let endpoint = m.ipc_endpoint {
            namespace = ProtobufC.string(endpoint.pointee.namespace_id)
            path = ProtobufC.string(endpoint.pointee.path)
        }
        guard let exePath = ProtobufC.string(m.exe_path), let boot = ProtobufC.string(m.boot_id),
            let algorithm = ProtobufC.string(m.exe_hash_algorithm), let namespace, let path
        else { throw .undecodableMessage(type: "DaemonProcess", reason: "a string field is not valid UTF-8") }
        self.init(
            pid: m.pid, executablePath: exePath, executableHash: ProtobufC.bytes(m.exe_hash),
            executableHashAlgorithm: algorithm, bootID: boot,
            endpoint: IPCEndpoint(namespaceID: namespace, path: path),
            startedAtUnixMilliseconds: m.started_at_unix_ms,
            idleTimeoutSeconds: m.has_idle_timeout_secs != 0 ? m.idle_timeout_secs : nil)
        self.hasEndpoint = m.ipc_endpoint != nil
    }

    /// ``executableHash`` as lower-case hex (how `b3sum` prints it).
    public var executableHashHex: String { Self.hex(executableHash) }

    /// Lower-case hex of `bytes`.
    @_spi(Internals) public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether a decoded `DaemonProcess` carried `ipc_endpoint` (always `true` otherwise).
    package internal(set) var hasEndpoint = true
}

extension ProtobufC {
    /// Calls `body` with a C string for `value`, or NULL when it is empty, so proto2
    /// optional strings are omitted exactly when proto3 would omit them.
    static func withOptionalCString<R>(_ value: String, _ body: (UnsafeMutablePointer<CChar>?) -> R) -> R {
        if value.isEmpty { return body(nil) }
        return value.withCString { body(UnsafeMutablePointer(mutating: $0)) }
    }
}
