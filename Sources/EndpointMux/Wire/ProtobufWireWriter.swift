/// A hand-written protobuf wire writer for the few messages EndpointMux sends (`Frame`,
/// `Epitaph`), producing exactly the bytes libprotobuf-c 1.4's `pack` produces.
///
/// What "exactly" means here (proto3 as libprotobuf-c packs it): fields in ascending
/// number; a scalar equal to 0 and an empty `bytes` or `string` are omitted; `uint32` and
/// `uint64` are plain varints; enums are packed as `int32` (a negative value is
/// sign-extended to a 10-byte varint); `sint32` is zigzag; a `string` ends at its first NUL
/// (libprotobuf-c stores C strings). The differential tests (`WireWriterDifferentialTests`)
/// compare every writer here with `pack` over random field combinations.
///
/// Writers take raw pointers and return the number of bytes written; callers size the
/// destination first with the matching `…ByteCount` function, so nothing is bounds-checked
/// twice and nothing allocates.
package enum ProtobufWireWriter {
    // MARK: Primitives

    /// Bytes of the varint encoding of `value` (1...10).
    @inline(__always)
    package static func varintByteCount(_ value: UInt64) -> Int {
        // ceil(significant bits / 7), with at least one byte for 0.
        let bits = 64 &- (value | 1).leadingZeroBitCount
        return (bits &* 9 &+ 64) &>> 6
    }

    /// Writes `value` as a varint at `out`; returns the bytes written.
    @inline(__always)
    package static func writeVarint(_ value: UInt64, to out: UnsafeMutablePointer<UInt8>) -> Int {
        if value < 0x80 {
            out.pointee = UInt8(truncatingIfNeeded: value)
            return 1
        }
        var remaining = value
        var index = 0
        while remaining >= 0x80 {
            out[index] = UInt8(truncatingIfNeeded: remaining) | 0x80
            remaining &>>= 7
            index &+= 1
        }
        out[index] = UInt8(truncatingIfNeeded: remaining)
        return index &+ 1
    }

    /// An enum (or `int32`) value as libprotobuf-c's `int32_pack` writes it: sign-extended.
    @inline(__always)
    package static func int32Varint(_ value: Int32) -> UInt64 {
        UInt64(bitPattern: Int64(value))
    }

    /// A `sint32` value in zigzag form.
    @inline(__always)
    package static func zigzag(_ value: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: (value &<< 1) ^ (value &>> 31)))
    }

    /// Bytes of a varint field (tag < 16), 0 when the value is 0 (omitted).
    @inline(__always)
    package static func varintFieldByteCount(_ value: UInt64) -> Int {
        value == 0 ? 0 : 1 &+ varintByteCount(value)
    }

    /// Bytes of a length-delimited field (tag < 16) of `count` bytes, 0 when empty (omitted).
    @inline(__always)
    package static func lengthDelimitedFieldByteCount(_ count: Int) -> Int {
        count == 0 ? 0 : 1 &+ varintByteCount(UInt64(count)) &+ count
    }

    /// Writes a varint field with a one-byte tag, unless `value` is 0.
    @inline(__always)
    package static func writeVarintField(_ tag: UInt8, _ value: UInt64, to out: UnsafeMutablePointer<UInt8>) -> Int {
        guard value != 0 else { return 0 }
        out.pointee = tag
        return 1 &+ writeVarint(value, to: out + 1)
    }

    /// Writes the tag and length of a length-delimited field (one-byte tag) of `count`
    /// bytes, unless it is empty; the value itself is the caller's.
    @inline(__always)
    package static func writeLengthPrefix(_ tag: UInt8, _ count: Int, to out: UnsafeMutablePointer<UInt8>) -> Int {
        guard count != 0 else { return 0 }
        out.pointee = tag
        return 1 &+ writeVarint(UInt64(count), to: out + 1)
    }

    /// Writes a whole length-delimited field (one-byte tag), unless `bytes` is empty.
    @inline(__always)
    package static func writeLengthDelimitedField(
        _ tag: UInt8, _ bytes: UnsafeRawBufferPointer, to out: UnsafeMutablePointer<UInt8>
    ) -> Int {
        guard let base = bytes.baseAddress, bytes.count != 0 else { return 0 }
        let prefix = writeLengthPrefix(tag, bytes.count, to: out)
        UnsafeMutableRawPointer(out + prefix).copyMemory(from: base, byteCount: bytes.count)
        return prefix &+ bytes.count
    }

    /// `bytes` up to (not including) the first NUL: what libprotobuf-c packs for a C string.
    @inline(__always)
    package static func cStringPrefix(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard let base = bytes.baseAddress, bytes.count != 0 else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        guard let nul = memchrBytes(base, count: bytes.count) else { return bytes }
        return UnsafeRawBufferPointer(start: base, count: nul)
    }

    private static func memchrBytes(_ base: UnsafeRawPointer, count: Int) -> Int? {
        var index = 0
        while index < count {
            if base.load(fromByteOffset: index, as: UInt8.self) == 0 { return index }
            index &+= 1
        }
        return nil
    }

    /// Calls `body` with the UTF-8 bytes of `string` up to its first NUL, without copying
    /// native strings.
    @inline(__always)
    package static func withCStringBytes<R>(_ string: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if string.isEmpty { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        if let result = string.utf8.withContiguousStorageIfAvailable({ body(cStringPrefix(UnsafeRawBufferPointer($0))) }
        ) {
            return result
        }
        let copy = Array(string.utf8)
        return copy.withUnsafeBytes { body(cStringPrefix($0)) }
    }

    // MARK: v1 header

    /// Writes the 5-byte v1 header for a body of `bodyByteCount` bytes (already checked).
    @inline(__always)
    package static func writeV1Header(bodyByteCount: Int, to out: UnsafeMutablePointer<UInt8>) {
        out.pointee = V1Framing.framingByte
        UnsafeMutableRawPointer(out + 1).storeBytes(
            of: UInt32(truncatingIfNeeded: bodyByteCount).littleEndian, as: UInt32.self)
    }

    /// Checks a body length against the cap and the u32 length field.
    @inline(__always)
    package static func checkBodyByteCount(_ count: Int, maxBodyByteCount: Int) throws(FramingError) {
        guard count <= maxBodyByteCount, count <= Int(UInt32.max) else {
            throw .frameTooLarge(length: UInt64(count), limit: maxBodyByteCount)
        }
    }

    /// Grows `buffer`'s capacity (geometrically) so `extra` more bytes append without a
    /// reallocation.
    @inline(__always)
    package static func reserve(_ buffer: inout [UInt8], extra: Int) {
        let needed = buffer.count &+ extra
        if buffer.capacity < needed {
            buffer.reserveCapacity(Swift.max(needed, buffer.capacity &* 2))
        }
    }

    /// Copies `count` bytes (non-overlapping); up to 64 bytes inline with 16-byte moves
    /// (two overlapping ones per 16–32 bytes), longer runs through `memmove`. Small
    /// payloads are the common case and a call through the PLT costs more than the copy.
    @inline(__always)
    package static func copyBytes(to destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, count: Int) {
        typealias V = SIMD16<UInt8>
        if count >= 16 && count <= 64 {
            let head = source.loadUnaligned(as: V.self)
            let tail = source.loadUnaligned(fromByteOffset: count &- 16, as: V.self)
            if count > 32 {
                let second = source.loadUnaligned(fromByteOffset: 16, as: V.self)
                let third = source.loadUnaligned(fromByteOffset: count &- 32, as: V.self)
                destination.storeBytes(of: second, toByteOffset: 16, as: V.self)
                destination.storeBytes(of: third, toByteOffset: count &- 32, as: V.self)
            }
            destination.storeBytes(of: head, as: V.self)
            destination.storeBytes(of: tail, toByteOffset: count &- 16, as: V.self)
        } else {
            destination.copyMemory(from: source, byteCount: count)
        }
    }

    /// A new array of exactly `count` bytes, filled by `initialize` (which must write all
    /// of them at the pointer it is given).
    ///
    /// This is the allocation array literals use (`_allocateUninitializedArray`): the
    /// storage's type metadata comes from a per-call-site cache. `[UInt8](unsafeUninitializedCapacity:)`
    /// and `reserveCapacity` go through an unspecialized stdlib entry point that looks the
    /// metadata of `_ContiguousArrayStorage<UInt8>` up in the runtime's generic cache on
    /// every call (measured: 26 ns against 60 ns to allocate and free 150 bytes).
    @inline(__always)
    package static func makeByteArray(count: Int, _ initialize: (UnsafeMutablePointer<UInt8>) -> Void) -> [UInt8] {
        guard count > 0 else { return [] }
        let (array, storage): ([UInt8], _) = _allocateUninitializedArray(count._builtinWordValue)
        initialize(UnsafeMutablePointer<UInt8>(storage))
        return _finalizeUninitializedArray(array)
    }

    /// Appends the first `count` bytes at `source` to `buffer` (capacity already reserved).
    @inline(__always)
    package static func append(_ buffer: inout [UInt8], _ source: UnsafeRawPointer, count: Int) {
        guard count > 0 else { return }
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: source, count: count))
    }
}

// MARK: - Frame

/// The fields of one `Frame` with its variable-length parts borrowed as bytes: what the
/// writer needs to size and write a frame. Built inside the borrow of those bytes.
package struct FrameFields {
    package var envelopeVersion: UInt32
    package var kind: Int32
    package var payloadProtocol: UInt32
    package var requestID: UInt64
    package var payloadEncoding: Int32
    package var deadlineUnixMilliseconds: UInt64
    /// Payload bytes (`bytes` field 4), or, when ``payloadByteCount`` says more, the part
    /// of the payload the caller writes itself.
    package var payloadByteCount: Int
    /// Trace strings, already cut at their first NUL.
    package var traceparent: UnsafeRawBufferPointer
    package var tracestate: UnsafeRawBufferPointer

    /// Bytes of the fields before the payload's value: fields 1–3 and field 4's tag and length.
    @inline(__always)
    package var headFieldsByteCount: Int {
        ProtobufWireWriter.varintFieldByteCount(UInt64(envelopeVersion))
            &+ ProtobufWireWriter.varintFieldByteCount(ProtobufWireWriter.int32Varint(kind))
            &+ ProtobufWireWriter.varintFieldByteCount(UInt64(payloadProtocol))
            &+ (payloadByteCount == 0 ? 0 : 1 &+ ProtobufWireWriter.varintByteCount(UInt64(payloadByteCount)))
    }

    /// Bytes of fields 5–7 and the trace strings' tags and lengths (not their bytes).
    @inline(__always)
    package var tailFieldsByteCount: Int {
        ProtobufWireWriter.varintFieldByteCount(requestID)
            &+ ProtobufWireWriter.varintFieldByteCount(ProtobufWireWriter.int32Varint(payloadEncoding))
            &+ ProtobufWireWriter.varintFieldByteCount(deadlineUnixMilliseconds)
            &+ (traceparent.count == 0 ? 0 : 1 &+ ProtobufWireWriter.varintByteCount(UInt64(traceparent.count)))
            &+ (tracestate.count == 0 ? 0 : 1 &+ ProtobufWireWriter.varintByteCount(UInt64(tracestate.count)))
    }

    /// The whole body's length.
    @inline(__always)
    package var bodyByteCount: Int {
        headFieldsByteCount &+ payloadByteCount &+ tailFieldsByteCount &+ traceparent.count &+ tracestate.count
    }

    /// Writes fields 1–3 and field 4's tag and length; returns the bytes written.
    @inline(__always)
    package func writeHead(to out: UnsafeMutablePointer<UInt8>) -> Int {
        var n = ProtobufWireWriter.writeVarintField(0x08, UInt64(envelopeVersion), to: out)
        n &+= ProtobufWireWriter.writeVarintField(0x10, ProtobufWireWriter.int32Varint(kind), to: out + n)
        n &+= ProtobufWireWriter.writeVarintField(0x18, UInt64(payloadProtocol), to: out + n)
        n &+= ProtobufWireWriter.writeLengthPrefix(0x22, payloadByteCount, to: out + n)
        return n
    }

    /// Writes fields 5–9 (trace bytes included); returns the bytes written.
    @inline(__always)
    package func writeTail(to out: UnsafeMutablePointer<UInt8>) -> Int {
        var n = ProtobufWireWriter.writeVarintField(0x28, requestID, to: out)
        n &+= ProtobufWireWriter.writeVarintField(0x30, ProtobufWireWriter.int32Varint(payloadEncoding), to: out + n)
        n &+= ProtobufWireWriter.writeVarintField(0x38, deadlineUnixMilliseconds, to: out + n)
        n &+= ProtobufWireWriter.writeLengthDelimitedField(0x42, traceparent, to: out + n)
        n &+= ProtobufWireWriter.writeLengthDelimitedField(0x4A, tracestate, to: out + n)
        return n
    }

    /// Writes the whole body with `payload` as field 4 (whose length must be
    /// ``payloadByteCount``); returns the bytes written.
    @inline(__always)
    package func writeBody(payload: UnsafeRawBufferPointer, to out: UnsafeMutablePointer<UInt8>) -> Int {
        var n = writeHead(to: out)
        if let base = payload.baseAddress, payloadByteCount != 0 {
            ProtobufWireWriter.copyBytes(to: UnsafeMutableRawPointer(out + n), from: base, count: payloadByteCount)
            n &+= payloadByteCount
        }
        return n &+ writeTail(to: out + n)
    }

    /// A whole v1 frame (header and body) in one exactly-sized array.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` above the cap.
    @inline(__always)
    package func encodedFrame(payload: UnsafeRawBufferPointer, maxBodyByteCount: Int) throws(FramingError) -> [UInt8] {
        let body = bodyByteCount
        try ProtobufWireWriter.checkBodyByteCount(body, maxBodyByteCount: maxBodyByteCount)
        return ProtobufWireWriter.makeByteArray(count: V1Framing.headerByteCount &+ body) { base in
            ProtobufWireWriter.writeV1Header(bodyByteCount: body, to: base)
            _ = writeBody(payload: payload, to: base + V1Framing.headerByteCount)
        }
    }

    /// Appends a whole v1 frame to `buffer` (at most one reallocation of `buffer`, none
    /// when its capacity suffices).
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` above the cap; `buffer` is
    ///   then unchanged.
    @inline(__always)
    package func appendFrame(
        payload: UnsafeRawBufferPointer, to buffer: inout [UInt8], maxBodyByteCount: Int
    ) throws(FramingError) {
        let body = bodyByteCount
        if body <= Self.stagedBodyByteCount {
            // Small frames are written whole on the stack and appended at once: one
            // uniqueness and capacity check of `buffer` instead of one per piece.
            try ProtobufWireWriter.checkBodyByteCount(body, maxBodyByteCount: maxBodyByteCount)
            let total = V1Framing.headerByteCount &+ body
            withUnsafeTemporaryAllocation(
                of: UInt8.self, capacity: V1Framing.headerByteCount + Self.stagedBodyByteCount
            ) { scratch in
                guard let s = scratch.baseAddress else { return }
                ProtobufWireWriter.writeV1Header(bodyByteCount: body, to: s)
                _ = writeBody(payload: payload, to: s + V1Framing.headerByteCount)
                buffer.append(contentsOf: UnsafeRawBufferPointer(start: s, count: total))
            }
            return
        }
        try appendFrame(to: &buffer, maxBodyByteCount: maxBodyByteCount) { buffer in
            if let base = payload.baseAddress { ProtobufWireWriter.append(&buffer, base, count: payloadByteCount) }
        }
    }

    /// Bodies up to this size are staged whole on the stack by ``appendFrame(payload:to:maxBodyByteCount:)``.
    package static let stagedBodyByteCount = 512

    /// Appends a whole v1 frame to `buffer`; `appendPayload` appends exactly
    /// ``payloadByteCount`` bytes (field 4's value) when the payload is not empty.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` above the cap; `buffer` is
    ///   then unchanged.
    @inline(__always)
    package func appendFrame(
        to buffer: inout [UInt8], maxBodyByteCount: Int, appendPayload: (inout [UInt8]) -> Void
    ) throws(FramingError) {
        let body = bodyByteCount
        try ProtobufWireWriter.checkBodyByteCount(body, maxBodyByteCount: maxBodyByteCount)
        ProtobufWireWriter.reserve(&buffer, extra: V1Framing.headerByteCount &+ body)
        // Header and small fields go through a stack scratch; payload and strings are
        // appended straight from their storage. At most 5 + 29 + 39 + 6 = 79 bytes are
        // staged at once.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { scratch in
            guard let s = scratch.baseAddress else { return }
            ProtobufWireWriter.writeV1Header(bodyByteCount: body, to: s)
            var n = V1Framing.headerByteCount &+ writeHead(to: s + V1Framing.headerByteCount)
            if payloadByteCount != 0 {
                ProtobufWireWriter.append(&buffer, s, count: n)
                appendPayload(&buffer)
                n = 0
            }
            n &+= ProtobufWireWriter.writeVarintField(0x28, requestID, to: s + n)
            n &+= ProtobufWireWriter.writeVarintField(0x30, ProtobufWireWriter.int32Varint(payloadEncoding), to: s + n)
            n &+= ProtobufWireWriter.writeVarintField(0x38, deadlineUnixMilliseconds, to: s + n)
            n &+= ProtobufWireWriter.writeLengthPrefix(0x42, traceparent.count, to: s + n)
            if traceparent.count != 0, let base = traceparent.baseAddress {
                ProtobufWireWriter.append(&buffer, s, count: n)
                ProtobufWireWriter.append(&buffer, base, count: traceparent.count)
                n = 0
            }
            n &+= ProtobufWireWriter.writeLengthPrefix(0x4A, tracestate.count, to: s + n)
            ProtobufWireWriter.append(&buffer, s, count: n)
            if tracestate.count != 0, let base = tracestate.baseAddress {
                ProtobufWireWriter.append(&buffer, base, count: tracestate.count)
            }
        }
    }
}

// MARK: - Epitaph

extension ProtobufWireWriter {
    /// Bytes of an `Epitaph{sint32 status = 1; string reason = 2}` message.
    @inline(__always)
    package static func epitaphByteCount(status: Int32, reason: UnsafeRawBufferPointer) -> Int {
        varintFieldByteCount(zigzag(status)) &+ lengthDelimitedFieldByteCount(reason.count)
    }

    /// Writes an `Epitaph` message; returns the bytes written.
    @inline(__always)
    package static func writeEpitaph(
        status: Int32, reason: UnsafeRawBufferPointer, to out: UnsafeMutablePointer<UInt8>
    ) -> Int {
        let n = writeVarintField(0x08, zigzag(status), to: out)
        return n &+ writeLengthDelimitedField(0x12, reason, to: out + n)
    }
}
