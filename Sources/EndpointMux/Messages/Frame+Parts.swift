/// Big frames without copies: a frame written as the bytes around its payload plus the
/// payload array itself, so the payload goes to the socket as its own `iovec`.
extension Frame {
    /// Payloads at least this big are written as their own part by the adapters (and are
    /// taken over from the receive buffer without a copy when a frame fills it).
    package static let separatePayloadByteCount = 64 * 1024

    /// The encoded frame in three parts, `head + payload + tail` byte for byte what
    /// ``encoded(maxBodyByteCount:)`` returns: `head` is the v1 header and the fields before
    /// the payload's value, `payload` is ``payload`` itself (shared, not copied), `tail`
    /// the fields after it (may be empty).
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` when the body exceeds the cap.
    package func encodedParts(
        maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(FramingError) -> (head: [UInt8], payload: [UInt8], tail: [UInt8]) {
        var failure: FramingError?
        let parts: ([UInt8], [UInt8]) = withFields { fields, _ in
            let body = fields.bodyByteCount
            do throws(FramingError) {
                try ProtobufWireWriter.checkBodyByteCount(body, maxBodyByteCount: maxBodyByteCount)
            } catch {
                failure = error
                return ([], [])
            }
            let headCount = V1Framing.headerByteCount &+ fields.headFieldsByteCount
            let head = [UInt8](unsafeUninitializedCapacity: headCount) { out, count in
                guard let base = out.baseAddress else { count = 0; return }
                ProtobufWireWriter.writeV1Header(bodyByteCount: body, to: base)
                count = V1Framing.headerByteCount &+ fields.writeHead(to: base + V1Framing.headerByteCount)
            }
            let tailCount = fields.tailFieldsByteCount &+ fields.traceparent.count &+ fields.tracestate.count
            let tail = [UInt8](unsafeUninitializedCapacity: tailCount) { out, count in
                count = out.baseAddress.map { fields.writeTail(to: $0) } ?? 0
            }
            return (head, tail)
        }
        if let failure { throw failure }
        return (parts.0, payload, parts.1)
    }
}
