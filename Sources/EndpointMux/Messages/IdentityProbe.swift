/// An identity probe (lane `0xB232`): a REQUEST carrying a 32-byte nonce.
public struct ProbeRequest: Hashable, Sendable {
    /// Bytes in a probe nonce (`PROBE_NONCE_BYTES`).
    public static let nonceByteCount = 32

    /// The 32-byte challenge the answer must echo.
    public var nonce: [UInt8]
    /// The request id; running-process uses the first 8 nonce bytes as a little-endian u64.
    public var requestID: UInt64
    /// Trace context, echoed in the answer.
    public var traceparent: String
    /// Trace state, echoed in the answer.
    public var tracestate: String

    /// A probe for `nonce`, with the reference's request id rule.
    /// - Throws: ``ProbeError/nonceLength(_:)`` unless the nonce has 32 bytes.
    public init(nonce: [UInt8], traceparent: String = "", tracestate: String = "") throws(ProbeError) {
        guard nonce.count == Self.nonceByteCount else { throw .nonceLength(nonce.count) }
        self.init(checkedNonce: nonce, traceparent: traceparent, tracestate: tracestate)
    }

    /// A probe with a fresh random nonce (the system's secure generator).
    public static func random() -> ProbeRequest {
        var generator = SystemRandomNumberGenerator()
        let nonce = (0..<nonceByteCount).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return ProbeRequest(checkedNonce: nonce, traceparent: "", tracestate: "")
    }

    /// `nonce` has 32 bytes.
    private init(checkedNonce nonce: [UInt8], traceparent: String, tracestate: String) {
        self.nonce = nonce
        self.requestID = nonce.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        self.traceparent = traceparent
        self.tracestate = tracestate
    }

    /// The probe as a `Frame` on ``PayloadProtocol/identityProbe``.
    public var frame: Frame {
        Frame(payloadProtocol: .identityProbe, payload: nonce, requestID: requestID,
              traceparent: traceparent, tracestate: tracestate)
    }

    /// Validates a probe frame as the reference's `validate_endpoint_probe_request_frame`:
    /// envelope 1, kind REQUEST, lane `0xB232`, encoding NONE, exactly 32 payload bytes.
    /// The request id is not checked.
    public init(validating view: FrameView, in buffer: UnsafeRawBufferPointer) throws(ProbeError) {
        try Self.validate(view)
        self.nonce = Array(view.payload(in: buffer))
        self.requestID = view.requestID
        self.traceparent = String(decoding: UnsafeRawBufferPointer(rebasing: buffer[view.traceparentRange]), as: UTF8.self)
        self.tracestate = String(decoding: UnsafeRawBufferPointer(rebasing: buffer[view.tracestateRange]), as: UTF8.self)
    }

    static func validate(_ view: FrameView) throws(ProbeError) {
        guard view.envelopeVersion == V1Framing.envelopeVersion else { throw .envelopeVersion(view.envelopeVersion) }
        guard view.kind == .request else { throw .kind(view.kind) }
        guard view.payloadProtocol == .identityProbe else { throw .payloadProtocol(view.payloadProtocol) }
        guard view.payloadEncoding == .none else { throw .payloadEncoding(view.payloadEncoding) }
        guard view.payloadRange.count == nonceByteCount else { throw .nonceLength(view.payloadRange.count) }
    }
}

/// Why a probe request was malformed (fatal to the connection, as in the reference).
public enum ProbeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `envelope_version` was not 1.
    case envelopeVersion(UInt32)
    /// The kind was not REQUEST.
    case kind(FrameKind)
    /// The lane was not `0xB232`.
    case payloadProtocol(PayloadProtocol)
    /// The payload was compressed.
    case payloadEncoding(PayloadEncoding)
    /// The nonce did not have 32 bytes.
    case nonceLength(Int)

    public var description: String {
        switch self {
        case let .envelopeVersion(v): return "envelope_version \(v) is not v1"
        case let .kind(kind): return "probe kind \(kind) is not REQUEST"
        case let .payloadProtocol(lane): return "probe lane \(lane) is not 0xB232"
        case let .payloadEncoding(encoding): return "payload is compressed (\(encoding))"
        case let .nonceLength(n): return "nonce must be 32 bytes, got \(n)"
        }
    }
}

/// Answers identity probes for one daemon identity.
///
/// The `DaemonProcess` bytes are encoded once; each answer is a RESPONSE on `0xB232`
/// echoing the request id and trace fields, whose payload is
/// `nonce ‖ DaemonProcess ‖ legacy tail` — byte for byte what running-process writes.
public struct ProbeResponder: Hashable, Sendable {
    /// The identity proved in every answer.
    public let identity: DaemonIdentity
    /// `DaemonProcess` followed by the legacy tail (`1a 20` + 32 bytes), or without the tail.
    public let identityPayload: [UInt8]

    /// Prepares answers for `identity`.
    /// - Parameter includeLegacyTail: append the reserved tag-3 SHA-256 slot (the
    ///   reference does; clients accept answers without it).
    public init(identity: DaemonIdentity, includeLegacyTail: Bool = true) {
        self.identity = identity
        var payload = identity.encodedDaemonProcess()
        if includeLegacyTail {
            let tail = identity.legacyExecutableSHA256.count == 32
                ? identity.legacyExecutableSHA256 : [UInt8](repeating: 0, count: 32)
            payload += [0x1A, 0x20] + tail
        }
        self.identityPayload = payload
    }

    /// The framed answer to `request`.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` if the answer would exceed the cap.
    public func answer(
        _ request: ProbeRequest, maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(FramingError) -> [UInt8] {
        let response = Frame(kind: .response, payloadProtocol: .identityProbe,
                             payload: request.nonce + identityPayload, requestID: request.requestID,
                             traceparent: request.traceparent, tracestate: request.tracestate)
        return try response.encoded(maxBodyByteCount: maxBodyByteCount)
    }
}

/// A probe answer as a client reads it.
public struct ProbeResponse: Hashable, Sendable {
    /// The identity the server claims.
    public var identity: DaemonIdentity
    /// The answer's request id.
    public var requestID: UInt64

    /// Checks an answer the way running-process's `probe_endpoint` does: envelope 1,
    /// RESPONSE, lane `0xB232`, the request id sent, encoding NONE, the nonce echoed, then a
    /// `DaemonProcess` with an endpoint, hash algorithm `"blake3"` and a 32-byte hash.
    /// - Throws: ``ProbeVerificationError``.
    public init(validating frame: Frame, for request: ProbeRequest) throws(ProbeVerificationError) {
        guard frame.envelopeVersion == V1Framing.envelopeVersion else {
            throw .badEnvelope("envelope_version \(frame.envelopeVersion)")
        }
        guard frame.kind == .response else { throw .badEnvelope("kind \(frame.kind)") }
        guard frame.payloadProtocol == .identityProbe else { throw .badEnvelope("lane \(frame.payloadProtocol)") }
        guard frame.requestID == request.requestID else {
            throw .requestIDMismatch(expected: request.requestID, received: frame.requestID)
        }
        guard frame.payloadEncoding == .none else { throw .badEnvelope("encoding \(frame.payloadEncoding)") }
        guard frame.payload.count >= ProbeRequest.nonceByteCount,
              frame.payload.prefix(ProbeRequest.nonceByteCount).elementsEqual(request.nonce)
        else { throw .nonceMismatch }
        let decoded = frame.payload.withUnsafeBytes { raw in
            Result { () throws(FramingError) in
                try DaemonIdentity(parsingDaemonProcess: UnsafeRawBufferPointer(rebasing: raw[ProbeRequest.nonceByteCount...]))
            }
        }
        let identity: DaemonIdentity
        switch decoded {
        case let .success(value): identity = value
        case let .failure(error): throw .undecodableIdentity(error.description)
        }
        guard identity.hasEndpoint else { throw .undecodableIdentity("ipc_endpoint is missing") }
        guard identity.executableHashAlgorithm == DaemonIdentity.blake3Algorithm else {
            throw .undecodableIdentity("exe_hash_algorithm \"\(identity.executableHashAlgorithm)\" is not blake3")
        }
        guard identity.executableHash.count == 32 else {
            throw .undecodableIdentity("exe_hash has \(identity.executableHash.count) bytes, not 32")
        }
        self.identity = identity
        self.requestID = frame.requestID
    }
}

/// Why a client rejected a probe answer or the identity behind it.
public enum ProbeVerificationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The answer's envelope was wrong (`detail` names the field).
    case badEnvelope(String)
    /// The answer echoed another request id.
    case requestIDMismatch(expected: UInt64, received: UInt64)
    /// The answer did not start with the nonce sent.
    case nonceMismatch
    /// The `DaemonProcess` did not decode or normalise.
    case undecodableIdentity(String)
    /// A field of the claimed identity differs from the expected one.
    case identityMismatch(field: String, expected: String, received: String)
    /// The claimed process is not running, or is not the process the check expects.
    case processCheckFailed(String)

    public var description: String {
        switch self {
        case let .badEnvelope(detail): return "probe answer has a bad envelope: \(detail)"
        case let .requestIDMismatch(expected, received):
            return "probe answer echoes request id \(received), expected \(expected)"
        case .nonceMismatch: return "probe answer does not echo the nonce"
        case let .undecodableIdentity(detail): return "probe answer's DaemonProcess is invalid: \(detail)"
        case let .identityMismatch(field, expected, received):
            return "identity mismatch in \(field): expected \(expected), got \(received)"
        case let .processCheckFailed(detail): return "process check failed: \(detail)"
        }
    }
}
