/// An identity probe (lane `0xB232`): a REQUEST carrying a 32-byte nonce.
@_spi(Internals) public struct ProbeRequest: Hashable, Sendable {
    /// Bytes in a probe nonce (`PROBE_NONCE_BYTES`).
    @_spi(Internals) public static let nonceByteCount = 32

    /// The 32-byte challenge the answer must echo.
    @_spi(Internals) public var nonce: [UInt8]
    /// The request id; running-process uses the first 8 nonce bytes as a little-endian u64.
    @_spi(Internals) public var requestID: UInt64
    /// Trace context, echoed in the answer.
    @_spi(Internals) public var traceparent: String
    /// Trace state, echoed in the answer.
    @_spi(Internals) public var tracestate: String

    /// A probe for `nonce`, with the reference's request id rule.
    /// - Throws: ``ProbeError/nonceLength(_:)`` unless the nonce has 32 bytes.
    @_spi(Internals) public init(nonce: [UInt8], traceparent: String = "", tracestate: String = "") throws(ProbeError) {
        guard nonce.count == Self.nonceByteCount else { throw .nonceLength(nonce.count) }
        self.init(checkedNonce: nonce, traceparent: traceparent, tracestate: tracestate)
    }

    /// A probe with a fresh random nonce (the system's secure generator).
    @_spi(Internals) public static func random() -> ProbeRequest {
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
    @_spi(Internals) public var frame: Frame {
        Frame(
            payloadProtocol: .identityProbe, payload: nonce, requestID: requestID,
            traceparent: traceparent, tracestate: tracestate)
    }

    /// Validates a probe frame as the reference's `validate_endpoint_probe_request_frame`:
    /// envelope 1, kind REQUEST, lane `0xB232`, encoding NONE, exactly 32 payload bytes.
    /// The request id is not checked.
    @_spi(Internals) public init(validating view: FrameView, in buffer: UnsafeRawBufferPointer) throws(ProbeError) {
        try Self.validate(view)
        self.nonce = Array(view.payload(in: buffer))
        self.requestID = view.requestID
        self.traceparent = String(
            decoding: UnsafeRawBufferPointer(rebasing: buffer[view.traceparentRange]), as: UTF8.self)
        self.tracestate = String(
            decoding: UnsafeRawBufferPointer(rebasing: buffer[view.tracestateRange]), as: UTF8.self)
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
@_spi(Internals) public enum ProbeError: Error, Hashable, Sendable, CustomStringConvertible {
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

    @_spi(Internals) public var description: String {
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
///
/// Everything in an answer but the nonce, the request id and the trace fields is fixed
/// while the process lives, so the responder keeps the encoded answer as a template
/// (header, envelope fields, payload prefix and identity) and each answer copies it into
/// one exactly-sized allocation (or a caller's buffer) and splices in only those fields.
@_spi(Internals) public struct ProbeResponder: Hashable, Sendable {
    /// The identity proved in every answer.
    @_spi(Internals) public let identity: DaemonIdentity
    /// `DaemonProcess` followed by the legacy tail (`1a 20` + 32 bytes), or without the tail.
    @_spi(Internals) public let identityPayload: [UInt8]
    /// The answer up to its tail fields: v1 header (length to patch), fields 1–3, field 4's
    /// tag and length, 32 nonce bytes (to overwrite) and ``identityPayload``.
    private let template: [UInt8]
    /// Where the nonce goes in ``template``.
    private let nonceOffset: Int

    /// Prepares answers for `identity`.
    /// - Parameter includeLegacyTail: append the reserved tag-3 SHA-256 slot (the
    ///   reference does; clients accept answers without it).
    @_spi(Internals) public init(identity: DaemonIdentity, includeLegacyTail: Bool = true) {
        self.identity = identity
        var payload = identity.encodedDaemonProcess()
        if includeLegacyTail {
            let tail =
                identity.legacyExecutableSHA256.count == 32
                ? identity.legacyExecutableSHA256 : [UInt8](repeating: 0, count: 32)
            payload += [0x1A, 0x20] + tail
        }
        self.identityPayload = payload
        let fields = Self.fields(
            payloadByteCount: ProbeRequest.nonceByteCount + payload.count,
            requestID: 0, traceparent: UnsafeRawBufferPointer(start: nil, count: 0),
            tracestate: UnsafeRawBufferPointer(start: nil, count: 0))
        let headCount = V1Framing.headerByteCount + fields.headFieldsByteCount
        self.nonceOffset = headCount
        self.template = [UInt8](unsafeUninitializedCapacity: headCount + fields.payloadByteCount) { out, count in
            guard let base = out.baseAddress else { count = 0; return }
            ProtobufWireWriter.writeV1Header(bodyByteCount: 0, to: base)
            var n = V1Framing.headerByteCount + fields.writeHead(to: base + V1Framing.headerByteCount)
            (base + n).initialize(repeating: 0, count: ProbeRequest.nonceByteCount)
            n += ProbeRequest.nonceByteCount
            payload.withUnsafeBufferPointer { identityBytes in
                if let source = identityBytes.baseAddress {
                    (base + n).initialize(from: source, count: identityBytes.count)
                }
            }
            count = n + payload.count
        }
    }

    /// The framed answer to `request`.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` if the answer would exceed the cap.
    @_spi(Internals) public func answer(
        _ request: ProbeRequest, maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(FramingError) -> [UInt8] {
        guard request.nonce.count == ProbeRequest.nonceByteCount else {
            // Only reachable by editing `nonce` after validation: the general encoder.
            let response = Frame(
                kind: .response, payloadProtocol: .identityProbe,
                payload: request.nonce + identityPayload, requestID: request.requestID,
                traceparent: request.traceparent, tracestate: request.tracestate)
            return try response.encoded(maxBodyByteCount: maxBodyByteCount)
        }
        let result = request.nonce.withUnsafeBytes { nonce in
            ProtobufWireWriter.withCStringBytes(request.traceparent) { traceparent in
                ProtobufWireWriter.withCStringBytes(request.tracestate) { tracestate in
                    Result { () throws(FramingError) in
                        try answer(
                            nonce: nonce, requestID: request.requestID, traceparent: traceparent,
                            tracestate: tracestate, maxBodyByteCount: maxBodyByteCount)
                    }
                }
            }
        }
        return try result.get()
    }

    /// Validates `view` as an identity probe (the rules of
    /// ``ProbeRequest/init(validating:in:)``) and returns the framed answer, reading the
    /// nonce and trace fields straight from `buffer`: one allocation, the answer itself.
    /// - Throws: ``MuxError/malformedProbe(_:)`` for an invalid probe,
    ///   ``MuxError/framing(_:)`` if the answer would exceed the cap.
    @_spi(Internals) public func answer(
        probe view: FrameView, in buffer: UnsafeRawBufferPointer,
        maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(MuxError) -> [UInt8] {
        do { try ProbeRequest.validate(view) } catch { throw .malformedProbe(error) }
        do {
            return try answer(
                nonce: UnsafeRawBufferPointer(rebasing: buffer[view.payloadRange]), requestID: view.requestID,
                traceparent: UnsafeRawBufferPointer(rebasing: buffer[view.traceparentRange]),
                tracestate: UnsafeRawBufferPointer(rebasing: buffer[view.tracestateRange]),
                maxBodyByteCount: maxBodyByteCount)
        } catch {
            throw .framing(error)
        }
    }

    /// Validates `view` as an identity probe and appends the framed answer to `output`
    /// (such as a connection's output buffer): no allocation when `output` has the capacity.
    /// - Throws: ``MuxError/malformedProbe(_:)`` for an invalid probe,
    ///   ``MuxError/framing(_:)`` if the answer would exceed the cap; `output` is then unchanged.
    @_spi(Internals) public func answer(
        probe view: FrameView, in buffer: UnsafeRawBufferPointer, into output: inout [UInt8],
        maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(MuxError) {
        do { try ProbeRequest.validate(view) } catch { throw .malformedProbe(error) }
        let nonce = UnsafeRawBufferPointer(rebasing: buffer[view.payloadRange])
        let fields = Self.fields(
            payloadByteCount: ProbeRequest.nonceByteCount + identityPayload.count, requestID: view.requestID,
            traceparent: UnsafeRawBufferPointer(rebasing: buffer[view.traceparentRange]),
            tracestate: UnsafeRawBufferPointer(rebasing: buffer[view.tracestateRange]))
        do {
            try fields.appendFrame(to: &output, maxBodyByteCount: maxBodyByteCount) { output in
                if let base = nonce.baseAddress { ProtobufWireWriter.append(&output, base, count: nonce.count) }
                identityPayload.withUnsafeBytes { identityBytes in
                    if let base = identityBytes.baseAddress {
                        ProtobufWireWriter.append(&output, base, count: identityBytes.count)
                    }
                }
            }
        } catch {
            throw .framing(error)
        }
    }

    /// The answer's frame fields.
    @inline(__always)
    private static func fields(
        payloadByteCount: Int, requestID: UInt64, traceparent: UnsafeRawBufferPointer,
        tracestate: UnsafeRawBufferPointer
    ) -> FrameFields {
        FrameFields(
            envelopeVersion: V1Framing.envelopeVersion, kind: FrameKind.response.rawValue,
            payloadProtocol: PayloadProtocol.identityProbe.rawValue, requestID: requestID,
            payloadEncoding: PayloadEncoding.none.rawValue, deadlineUnixMilliseconds: 0,
            payloadByteCount: payloadByteCount, traceparent: traceparent, tracestate: tracestate)
    }

    /// The answer from the template: copy it, patch the length, splice in the nonce (32
    /// bytes), then write the request id and trace fields. Trace bytes are written as
    /// given up to their first NUL, as libprotobuf-c would.
    @inline(__always)
    private func answer(
        nonce: UnsafeRawBufferPointer, requestID: UInt64, traceparent: UnsafeRawBufferPointer,
        tracestate: UnsafeRawBufferPointer, maxBodyByteCount: Int
    ) throws(FramingError) -> [UInt8] {
        let fields = Self.fields(
            payloadByteCount: ProbeRequest.nonceByteCount + identityPayload.count, requestID: requestID,
            traceparent: ProtobufWireWriter.cStringPrefix(traceparent),
            tracestate: ProtobufWireWriter.cStringPrefix(tracestate))
        let tailCount = fields.tailFieldsByteCount + fields.traceparent.count + fields.tracestate.count
        let total = template.count + tailCount
        let body = total - V1Framing.headerByteCount
        try ProtobufWireWriter.checkBodyByteCount(body, maxBodyByteCount: maxBodyByteCount)
        // Callers pass a validated 32-byte nonce.
        guard let nonceBase = nonce.baseAddress, nonce.count == ProbeRequest.nonceByteCount else { return [] }
        let nonceOffset = nonceOffset
        return template.withUnsafeBufferPointer { template in
            ProtobufWireWriter.makeByteArray(count: total) { base in
                if let templateBase = template.baseAddress {
                    UnsafeMutableRawPointer(base).copyMemory(from: templateBase, byteCount: template.count)
                }
                ProtobufWireWriter.writeV1Header(bodyByteCount: body, to: base)
                UnsafeMutableRawPointer(base + nonceOffset).copyMemory(
                    from: nonceBase, byteCount: ProbeRequest.nonceByteCount)
                _ = fields.writeTail(to: base + template.count)
            }
        }
    }
}

/// A probe answer as a client reads it.
@_spi(Internals) public struct ProbeResponse: Hashable, Sendable {
    /// The identity the server claims.
    @_spi(Internals) public var identity: DaemonIdentity
    /// The answer's request id.
    @_spi(Internals) public var requestID: UInt64

    /// Checks an answer the way running-process's `probe_endpoint` does: envelope 1,
    /// RESPONSE, lane `0xB232`, the request id sent, encoding NONE, the nonce echoed, then a
    /// `DaemonProcess` with an endpoint, hash algorithm `"blake3"` and a 32-byte hash.
    /// - Throws: ``EndpointMuxError``.
    @_spi(Internals) public init(validating frame: Frame, for request: ProbeRequest) throws(EndpointMuxError) {
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
                try DaemonIdentity(
                    parsingDaemonProcess: UnsafeRawBufferPointer(rebasing: raw[ProbeRequest.nonceByteCount...]))
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
