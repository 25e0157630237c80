import CProtobuf

/// One v1 `Frame`, owned: the envelope fields and a copy of the payload.
///
/// Encoding and decoding go through libprotobuf-c, so the bytes are those running-process
/// writes: fields in ascending number, proto3 defaults omitted. For the per-message hot
/// path, ``FrameView`` reads the same fields without copying.
public struct Frame: Hashable, Sendable {
    /// Envelope version; ``V1Framing/envelopeVersion`` in every frame EndpointMux writes.
    public var envelopeVersion: UInt32
    /// What the frame is.
    public var kind: FrameKind
    /// The lane the payload belongs to.
    public var payloadProtocol: PayloadProtocol
    /// Opaque payload bytes.
    public var payload: [UInt8]
    /// Correlation id; responses echo the request's.
    public var requestID: UInt64
    /// Compression of ``payload``.
    public var payloadEncoding: PayloadEncoding
    /// Absolute deadline in Unix milliseconds; 0 = none.
    public var deadlineUnixMilliseconds: UInt64
    /// W3C `traceparent`; empty when absent.
    public var traceparent: String
    /// W3C `tracestate`; empty when absent.
    public var tracestate: String

    /// Creates a frame; the defaults are those of `Frame::request` in the reference.
    public init(
        envelopeVersion: UInt32 = V1Framing.envelopeVersion,
        kind: FrameKind = .request,
        payloadProtocol: PayloadProtocol,
        payload: [UInt8] = [],
        requestID: UInt64 = 0,
        payloadEncoding: PayloadEncoding = .none,
        deadlineUnixMilliseconds: UInt64 = 0,
        traceparent: String = "",
        tracestate: String = ""
    ) {
        self.envelopeVersion = envelopeVersion
        self.kind = kind
        self.payloadProtocol = payloadProtocol
        self.payload = payload
        self.requestID = requestID
        self.payloadEncoding = payloadEncoding
        self.deadlineUnixMilliseconds = deadlineUnixMilliseconds
        self.traceparent = traceparent
        self.tracestate = tracestate
    }

    /// The reply to this frame, as the reference's `Frame::response_to`: kind RESPONSE,
    /// envelope 1, encoding NONE, the same lane, request id and trace fields, no deadline.
    public func response(payload: [UInt8]) -> Frame {
        Frame(kind: .response, payloadProtocol: payloadProtocol, payload: payload, requestID: requestID,
              traceparent: traceparent, tracestate: tracestate)
    }

    /// Decodes a frame body (the bytes after the 5-byte header) with libprotobuf-c.
    ///
    /// String fields hold what libprotobuf-c stores (bytes up to the first NUL) and must
    /// be valid UTF-8, as prost requires.
    /// - Throws: ``FramingError/undecodableFrame(reason:)``.
    public init(parsingBody body: UnsafeRawBufferPointer) throws(FramingError) {
        let base = body.baseAddress?.assumingMemoryBound(to: UInt8.self)
        guard let message = endpointmux__v1__frame__unpack(nil, body.count, base) else {
            throw .undecodableFrame(reason: "libprotobuf-c rejected the body")
        }
        defer { endpointmux__v1__frame__free_unpacked(message, nil) }
        let m = message.pointee
        guard let traceparent = ProtobufC.string(m.traceparent),
              let tracestate = ProtobufC.string(m.tracestate)
        else { throw .undecodableFrame(reason: "trace field is not valid UTF-8") }
        self.init(
            envelopeVersion: m.envelope_version,
            kind: FrameKind(rawValue: Int32(truncatingIfNeeded: m.kind.rawValue)),
            payloadProtocol: PayloadProtocol(rawValue: m.payload_protocol),
            payload: ProtobufC.bytes(m.payload),
            requestID: m.request_id,
            payloadEncoding: PayloadEncoding(rawValue: Int32(truncatingIfNeeded: m.payload_encoding.rawValue)),
            deadlineUnixMilliseconds: m.deadline_unix_ms,
            traceparent: traceparent,
            tracestate: tracestate)
    }

    /// Decodes a frame body held in an array.
    public init(parsingBody body: [UInt8]) throws(FramingError) {
        let result = body.withUnsafeBytes { raw in Result { () throws(FramingError) in try Frame(parsingBody: raw) } }
        self = try result.get()
    }

    /// Decodes one whole frame, header included, that fills `bytes` exactly.
    /// - Throws: ``FramingError`` for a bad header, a length that disagrees with
    ///   `bytes.count`, or an undecodable body.
    public init(parsingFrame bytes: [UInt8], maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount) throws(FramingError) {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(FramingError) -> Frame in
                guard case let .header(length) = try V1Framing.readHeader(raw, maxBodyByteCount: maxBodyByteCount) else {
                    throw .truncated(expected: V1Framing.headerByteCount, available: raw.count)
                }
                guard raw.count == V1Framing.headerByteCount + length else {
                    throw .truncated(expected: V1Framing.headerByteCount + length, available: raw.count)
                }
                return try Frame(parsingBody: UnsafeRawBufferPointer(rebasing: raw[V1Framing.headerByteCount...]))
            }
        }
        self = try result.get()
    }

    /// The protobuf body (no header), packed by libprotobuf-c.
    public func encodedBody() -> [UInt8] {
        var message = Endpointmux__V1__Frame()
        endpointmux__v1__frame__init(&message)
        message.envelope_version = envelopeVersion
        message.kind = Endpointmux__V1__FrameKind(rawValue: .init(truncatingIfNeeded: kind.rawValue))
        message.payload_protocol = payloadProtocol.rawValue
        message.request_id = requestID
        message.payload_encoding = Endpointmux__V1__PayloadEncoding(rawValue: .init(truncatingIfNeeded: payloadEncoding.rawValue))
        message.deadline_unix_ms = deadlineUnixMilliseconds
        return payload.withUnsafeBufferPointer { payloadBuffer in
            traceparent.withCString { traceparentC in
                tracestate.withCString { tracestateC in
                    message.payload = ProtobufCBinaryData(
                        len: payloadBuffer.count, data: UnsafeMutablePointer(mutating: payloadBuffer.baseAddress))
                    message.traceparent = UnsafeMutablePointer(mutating: traceparentC)
                    message.tracestate = UnsafeMutablePointer(mutating: tracestateC)
                    let size = endpointmux__v1__frame__get_packed_size(&message)
                    return [UInt8](unsafeUninitializedCapacity: size) { out, count in
                        count = out.baseAddress.map { endpointmux__v1__frame__pack(&message, $0) } ?? 0
                    }
                }
            }
        }
    }

    /// Header and body, ready to write.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` when the body exceeds the cap.
    public func encoded(maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount) throws(FramingError) -> [UInt8] {
        let body = encodedBody()
        var bytes = try V1Framing.header(bodyByteCount: body.count, maxBodyByteCount: maxBodyByteCount)
        bytes.append(contentsOf: body)
        return bytes
    }
}

/// Conversions between libprotobuf-c storage and Swift values.
enum ProtobufC {
    /// A C string as Swift `String`, `nil` when it is not valid UTF-8; NULL is "".
    static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
        guard let pointer else { return "" }
        let length = strlenBounded(pointer)
        return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(validating: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }

    /// The bytes of a `ProtobufCBinaryData`.
    static func bytes(_ data: ProtobufCBinaryData) -> [UInt8] {
        guard let base = data.data, data.len > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: base, count: data.len))
    }

    private static func strlenBounded(_ pointer: UnsafePointer<CChar>) -> Int {
        var length = 0
        while pointer[length] != 0 { length += 1 }
        return length
    }
}
