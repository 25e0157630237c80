import CProtobuf

/// One v1 `Frame`, owned: the envelope fields and a copy of the payload.
///
/// Decoding goes through libprotobuf-c; encoding through a hand-written wire writer that
/// produces libprotobuf-c's bytes exactly (differential-tested), so the bytes are those
/// running-process writes: fields in ascending number, proto3 defaults omitted. For the
/// per-message hot path, `FrameView` reads the same fields without copying, and
/// `encode(into:maxBodyByteCount:)` appends to an output buffer without allocating.
public struct Frame: Hashable, Sendable {
    /// Envelope version; ``V1Framing/envelopeVersion`` in every frame EndpointMux writes.
    package var envelopeVersion: UInt32
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
        // Empty trace fields (the common case) as literals: no retain of the request's strings.
        Frame(
            kind: .response, payloadProtocol: payloadProtocol, payload: payload, requestID: requestID,
            traceparent: traceparent.isEmpty ? "" : traceparent, tracestate: tracestate.isEmpty ? "" : tracestate)
    }

    /// Decodes a frame body (the bytes after the 5-byte header) with libprotobuf-c.
    ///
    /// String fields hold what libprotobuf-c stores (bytes up to the first NUL) and must
    /// be valid UTF-8, as prost requires.
    /// - Throws: ``FramingError/undecodableFrame(reason:)``.
    @_spi(Internals) public init(parsingBody body: UnsafeRawBufferPointer) throws(FramingError) {
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
    @_spi(Internals) public init(parsingBody body: [UInt8]) throws(FramingError) {
        let result = body.withUnsafeBytes { raw in Result { () throws(FramingError) in try Frame(parsingBody: raw) } }
        self = try result.get()
    }

    /// Decodes one whole frame, header included, that fills `bytes` exactly.
    /// - Throws: ``FramingError`` for a bad header, a length that disagrees with
    ///   `bytes.count`, or an undecodable body.
    @_spi(Internals) public init(
        parsingFrame bytes: [UInt8], maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(FramingError) {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(FramingError) -> Frame in
                guard case let .header(length) = try V1Framing.readHeader(raw, maxBodyByteCount: maxBodyByteCount)
                else {
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

    /// The protobuf body (no header), byte for byte what libprotobuf-c's `pack` writes
    /// (written by ``ProtobufWireWriter``; differential-tested against `pack`).
    package func encodedBody() -> [UInt8] {
        withFields { fields, payload in
            let count = fields.bodyByteCount
            return [UInt8](unsafeUninitializedCapacity: count) { out, written in
                written = out.baseAddress.map { fields.writeBody(payload: payload, to: $0) } ?? 0
            }
        }
    }

    /// Header and body, ready to write, in one exactly-sized allocation.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` when the body exceeds the cap.
    @_spi(Internals) public func encoded(
        maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(FramingError) -> [UInt8] {
        if Self.bothEmpty(traceparent, tracestate) {
            // No trace fields (most frames): size and check first, then one borrow of the payload.
            let fields = FrameFields(
                envelopeVersion: envelopeVersion, kind: kind.rawValue, payloadProtocol: payloadProtocol.rawValue,
                requestID: requestID, payloadEncoding: payloadEncoding.rawValue,
                deadlineUnixMilliseconds: deadlineUnixMilliseconds, payloadByteCount: payload.count,
                traceparent: UnsafeRawBufferPointer(start: nil, count: 0),
                tracestate: UnsafeRawBufferPointer(start: nil, count: 0))
            let body = fields.bodyByteCount
            try ProtobufWireWriter.checkBodyByteCount(body, maxBodyByteCount: maxBodyByteCount)
            return payload.withUnsafeBytes { payloadBytes in
                ProtobufWireWriter.makeByteArray(count: V1Framing.headerByteCount &+ body) { base in
                    ProtobufWireWriter.writeV1Header(bodyByteCount: body, to: base)
                    _ = fields.writeBody(payload: payloadBytes, to: base + V1Framing.headerByteCount)
                }
            }
        }
        return try encodedWithTrace(maxBodyByteCount: maxBodyByteCount)
    }

    /// ``encoded(maxBodyByteCount:)`` for frames with trace fields; out of line, so the
    /// common path keeps a small stack frame.
    @inline(never)
    func encodedWithTrace(maxBodyByteCount: Int) throws(FramingError) -> [UInt8] {
        // No `Result` in between: its generic metadata would be looked up on every call.
        var failure: FramingError?
        let bytes: [UInt8] = withFields { fields, payload in
            do throws(FramingError) {
                return try fields.encodedFrame(payload: payload, maxBodyByteCount: maxBodyByteCount)
            } catch {
                failure = error
                return []
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Appends the whole frame (header and body) to `buffer`, such as a connection's
    /// output buffer: no allocation when `buffer` has the capacity, otherwise one
    /// (geometric) growth of `buffer`.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` when the body exceeds the
    ///   cap; `buffer` is then unchanged.
    @_spi(Internals) public func encode(
        into buffer: inout [UInt8], maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(FramingError) {
        if Self.bothEmpty(traceparent, tracestate) {
            // No trace fields (most frames): no borrows of the strings.
            let fields = FrameFields(
                envelopeVersion: envelopeVersion, kind: kind.rawValue, payloadProtocol: payloadProtocol.rawValue,
                requestID: requestID, payloadEncoding: payloadEncoding.rawValue,
                deadlineUnixMilliseconds: deadlineUnixMilliseconds, payloadByteCount: payload.count,
                traceparent: UnsafeRawBufferPointer(start: nil, count: 0),
                tracestate: UnsafeRawBufferPointer(start: nil, count: 0))
            try ProtobufWireWriter.checkBodyByteCount(fields.bodyByteCount, maxBodyByteCount: maxBodyByteCount)
            payload.withUnsafeBytes { payloadBytes in
                // Cannot throw: the size was checked above.
                try? fields.appendFrame(payload: payloadBytes, to: &buffer, maxBodyByteCount: maxBodyByteCount)
            }
            return
        }
        let failure: FramingError? = withFields { fields, payload in
            do throws(FramingError) {
                try fields.appendFrame(payload: payload, to: &buffer, maxBodyByteCount: maxBodyByteCount)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    /// The number of bytes ``encoded(maxBodyByteCount:)`` returns: header plus body.
    package var encodedByteCount: Int {
        withFields { fields, _ in V1Framing.headerByteCount + fields.bodyByteCount }
    }

    /// Whether both strings are empty. Not inlined on purpose: the strings arrive in
    /// registers (word by word), where an inlined check copied each one with a 16-byte
    /// load right after `response(payload:)` stored it as two words, and stalled on store
    /// forwarding (measured: a quarter of `encoded()`'s time in `respond.v1.64B`).
    @inline(never)
    static func bothEmpty(_ a: String, _ b: String) -> Bool {
        a.isEmpty && b.isEmpty
    }

    /// Calls `body` with the frame's fields and its payload bytes borrowed in place.
    @inline(__always)
    func withFields<R>(_ body: (FrameFields, UnsafeRawBufferPointer) -> R) -> R {
        payload.withUnsafeBytes { payloadBytes in
            ProtobufWireWriter.withCStringBytes(traceparent) { traceparentBytes in
                ProtobufWireWriter.withCStringBytes(tracestate) { tracestateBytes in
                    body(
                        FrameFields(
                            envelopeVersion: envelopeVersion, kind: kind.rawValue,
                            payloadProtocol: payloadProtocol.rawValue,
                            requestID: requestID, payloadEncoding: payloadEncoding.rawValue,
                            deadlineUnixMilliseconds: deadlineUnixMilliseconds, payloadByteCount: payloadBytes.count,
                            traceparent: traceparentBytes, tracestate: tracestateBytes), payloadBytes)
                }
            }
        }
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
