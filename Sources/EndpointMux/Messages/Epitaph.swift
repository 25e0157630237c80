import CProtobuf

/// Epitaph status codes: 0 is the designated clean end, negative values are system
/// errors (modelled on Zircon's `zx_status_t`, as FIDL epitaphs are), positive values
/// belong to the application.
public struct EpitaphStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The wire value (`Epitaph.status`, `sint32`).
    public var rawValue: Int32
    /// Creates a status from its wire value.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The server ended the connection on purpose (shutdown, done).
    public static let ok = EpitaphStatus(rawValue: 0)
    /// A bug in the server.
    public static let `internal` = EpitaphStatus(rawValue: -1)
    /// A lane or feature this endpoint does not serve (unserved or first-party lane,
    /// control message with fds over a transport that cannot carry them).
    public static let notSupported = EpitaphStatus(rawValue: -2)
    /// A resource limit was hit (file descriptors queued or per message).
    public static let noResources = EpitaphStatus(rawValue: -3)
    /// A well-framed message was invalid (malformed probe, invalid `fds`, not JSON-RPC).
    public static let invalidArguments = EpitaphStatus(rawValue: -10)
    /// A size or depth limit was exceeded.
    public static let outOfRange = EpitaphStatus(rawValue: -14)
    /// The stream broke its own rules (fd count mismatch, input ended inside a message).
    public static let badState = EpitaphStatus(rawValue: -20)
    /// An idle or partial-message timeout fired.
    public static let timedOut = EpitaphStatus(rawValue: -21)
    /// The server is going away (shutdown while the peer was connected).
    public static let unavailable = EpitaphStatus(rawValue: -28)
    /// A transport failure (system call error, truncated control data).
    public static let io = EpitaphStatus(rawValue: -40)
    /// The bytes were not a valid frame or JSON text.
    public static let invalidFrame = EpitaphStatus(rawValue: -45)

    public var description: String {
        switch self {
        case .ok: return "OK"
        case .internal: return "INTERNAL"
        case .notSupported: return "NOT_SUPPORTED"
        case .noResources: return "NO_RESOURCES"
        case .invalidArguments: return "INVALID_ARGS"
        case .outOfRange: return "OUT_OF_RANGE"
        case .badState: return "BAD_STATE"
        case .timedOut: return "TIMED_OUT"
        case .unavailable: return "UNAVAILABLE"
        case .io: return "IO"
        case .invalidFrame: return "INVALID_FRAME"
        default: return rawValue > 0 ? "APPLICATION(\(rawValue))" : "STATUS(\(rawValue))"
        }
    }
}

/// The last message a server sends before it closes a connection, saying why.
///
/// On v1 connections it is an EVENT frame with request id 0 on the epitaph lane
/// (`0xFFFF` by default) whose payload is `Epitaph{status, reason}`; on JSON-FD
/// connections an `rpc.epitaph` notification. Old peers ignore both and see EOF.
public struct Epitaph: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why the connection ended.
    public var status: EpitaphStatus
    /// A human-readable reason.
    public var reason: String

    /// Creates an epitaph.
    public init(status: EpitaphStatus, reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String { "epitaph \(status) (\(status.rawValue)): \(reason)" }

    /// The `Epitaph` protobuf message, byte for byte what libprotobuf-c's `pack` writes
    /// (hand-written wire writer, differential-tested against `pack`).
    package func encodedMessage() -> [UInt8] {
        ProtobufWireWriter.withCStringBytes(reason) { reasonBytes in
            let count = ProtobufWireWriter.epitaphByteCount(status: status.rawValue, reason: reasonBytes)
            return [UInt8](unsafeUninitializedCapacity: count) { out, written in
                written =
                    out.baseAddress.map {
                        ProtobufWireWriter.writeEpitaph(status: status.rawValue, reason: reasonBytes, to: $0)
                    } ?? 0
            }
        }
    }

    /// The whole v1 epitaph frame (header and body), the bytes of
    /// `try v1Frame(lane: lane).encoded(maxBodyByteCount:)`, in one exactly-sized allocation.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` when the body exceeds the cap.
    @_spi(Internals) public func encodedV1Frame(
        lane: PayloadProtocol = .defaultEpitaph, maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(FramingError) -> [UInt8] {
        let result = withFrameFields(lane: lane) { fields, reasonBytes in
            Result { () throws(FramingError) -> [UInt8] in
                let body = fields.bodyByteCount
                try ProtobufWireWriter.checkBodyByteCount(body, maxBodyByteCount: maxBodyByteCount)
                let total = V1Framing.headerByteCount + body
                return [UInt8](unsafeUninitializedCapacity: total) { out, count in
                    guard let base = out.baseAddress else { count = 0; return }
                    ProtobufWireWriter.writeV1Header(bodyByteCount: body, to: base)
                    var n = V1Framing.headerByteCount
                    n += fields.writeHead(to: base + n)
                    n += ProtobufWireWriter.writeEpitaph(status: status.rawValue, reason: reasonBytes, to: base + n)
                    n += fields.writeTail(to: base + n)
                    count = n
                }
            }
        }
        return try result.get()
    }

    /// Appends the whole v1 epitaph frame to `buffer` (such as a connection's output
    /// buffer) without allocating when `buffer` has the capacity.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` when the body exceeds the
    ///   cap; `buffer` is then unchanged.
    package func encodeV1Frame(
        into buffer: inout [UInt8], lane: PayloadProtocol = .defaultEpitaph,
        maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(FramingError) {
        let status = status.rawValue
        let failure: FramingError? = withFrameFields(lane: lane) { fields, reasonBytes in
            do throws(FramingError) {
                try fields.appendFrame(to: &buffer, maxBodyByteCount: maxBodyByteCount) { buffer in
                    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { scratch in
                        guard let s = scratch.baseAddress else { return }
                        // Field 1 and field 2's tag and length (at most 6 + 6 bytes).
                        var n = ProtobufWireWriter.writeVarintField(0x08, ProtobufWireWriter.zigzag(status), to: s)
                        n += ProtobufWireWriter.writeLengthPrefix(0x12, reasonBytes.count, to: s + n)
                        ProtobufWireWriter.append(&buffer, s, count: n)
                    }
                    if let base = reasonBytes.baseAddress {
                        ProtobufWireWriter.append(&buffer, base, count: reasonBytes.count)
                    }
                }
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    /// Calls `body` with the epitaph frame's fields (the payload being this message) and
    /// the reason's bytes as libprotobuf-c packs them.
    private func withFrameFields<R>(lane: PayloadProtocol, _ body: (FrameFields, UnsafeRawBufferPointer) -> R) -> R {
        ProtobufWireWriter.withCStringBytes(reason) { reasonBytes in
            let empty = UnsafeRawBufferPointer(start: nil, count: 0)
            let fields = FrameFields(
                envelopeVersion: V1Framing.envelopeVersion, kind: FrameKind.event.rawValue,
                payloadProtocol: lane.rawValue,
                requestID: 0, payloadEncoding: PayloadEncoding.none.rawValue, deadlineUnixMilliseconds: 0,
                payloadByteCount: ProtobufWireWriter.epitaphByteCount(status: status.rawValue, reason: reasonBytes),
                traceparent: empty, tracestate: empty)
            return body(fields, reasonBytes)
        }
    }

    /// Decodes an `Epitaph` message (a v1 epitaph frame's payload).
    /// - Throws: ``FramingError/undecodableMessage(type:reason:)``.
    @_spi(Internals) public init(parsingMessage bytes: [UInt8]) throws(FramingError) {
        let message = bytes.withUnsafeBufferPointer { endpointmux__v1__epitaph__unpack(nil, $0.count, $0.baseAddress) }
        guard let message else {
            throw .undecodableMessage(type: "Epitaph", reason: "libprotobuf-c rejected the bytes")
        }
        defer { endpointmux__v1__epitaph__free_unpacked(message, nil) }
        guard let reason = ProtobufC.string(message.pointee.reason) else {
            throw .undecodableMessage(type: "Epitaph", reason: "reason is not valid UTF-8")
        }
        self.init(status: EpitaphStatus(rawValue: message.pointee.status), reason: reason)
    }

    /// The v1 epitaph frame: EVENT, request id 0, on `lane`.
    package func v1Frame(lane: PayloadProtocol = .defaultEpitaph) -> Frame {
        Frame(kind: .event, payloadProtocol: lane, payload: encodedMessage(), requestID: 0)
    }

    /// Whether `frame` is an epitaph on `lane` (EVENT, request id 0), and if so which.
    package init?(v1Frame frame: Frame, lane: PayloadProtocol = .defaultEpitaph) {
        guard frame.kind == .event, frame.payloadProtocol == lane, frame.requestID == 0,
            let epitaph = try? Epitaph(parsingMessage: frame.payload)
        else { return nil }
        self = epitaph
    }
}
