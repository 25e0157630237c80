/// A zero-copy view of one v1 `Frame` inside a caller's buffer.
///
/// Holds the envelope's scalar fields and the *offsets* of the payload and trace fields
/// in the buffer that was parsed, so building one never allocates and never copies the
/// payload. Offsets are relative to that buffer's start; read the bytes back with
/// ``payload(in:)`` while the buffer is still unchanged.
///
/// Acceptance and field values agree with libprotobuf-c (``Frame/init(parsingBody:)``)
/// on every input: string fields end at their first NUL and must be valid UTF-8.
@_spi(Internals) public struct FrameView: Hashable, Sendable {
    /// `Frame.envelope_version`.
    @_spi(Internals) public var envelopeVersion: UInt32
    /// `Frame.kind`.
    @_spi(Internals) public var kind: FrameKind
    /// `Frame.payload_protocol`.
    @_spi(Internals) public var payloadProtocol: PayloadProtocol
    /// `Frame.request_id`.
    @_spi(Internals) public var requestID: UInt64
    /// `Frame.payload_encoding`.
    @_spi(Internals) public var payloadEncoding: PayloadEncoding
    /// `Frame.deadline_unix_ms`.
    @_spi(Internals) public var deadlineUnixMilliseconds: UInt64
    /// Where the payload lies in the parsed buffer (empty when absent).
    @_spi(Internals) public var payloadRange: Range<Int>
    /// Where `traceparent` lies in the parsed buffer (empty when absent).
    @_spi(Internals) public var traceparentRange: Range<Int>
    /// Where `tracestate` lies in the parsed buffer (empty when absent).
    @_spi(Internals) public var tracestateRange: Range<Int>

    /// Parses the frame body occupying `range` of `buffer`.
    /// - Throws: ``FramingError/undecodableFrame(reason:)`` when libprotobuf-c would reject it.
    @inline(__always)
    @_spi(Internals) public init(parsingBodyIn buffer: UnsafeRawBufferPointer, range: Range<Int>) throws(FramingError) {
        precondition(range.lowerBound >= 0 && range.upperBound <= buffer.count, "range outside the buffer")
        var envelopeVersion: UInt32 = 0
        var kind: Int32 = 0
        var payloadProtocol: UInt32 = 0
        var requestID: UInt64 = 0
        var encoding: Int32 = 0
        var deadline: UInt64 = 0
        var payload = range.lowerBound..<range.lowerBound
        var traceparent = payload
        var tracestate = payload
        // Fast path: one-byte tags of the nine known fields, inline varints and length
        // prefixes. Anything else (long tags, unknown fields, wrong wire types) goes
        // through the general scanner one field at a time; both follow libprotobuf-c.
        if let base = buffer.baseAddress, !range.isEmpty {
            var p = range.lowerBound
            let end = range.upperBound
            while p < end {
                let tag = base.load(fromByteOffset: p, as: UInt8.self)
                switch tag {
                case 0x08, 0x10, 0x18, 0x28, 0x30, 0x38:
                    var q = p &+ 1
                    var value: UInt64 = 0
                    if q < end, case let b = base.load(fromByteOffset: q, as: UInt8.self), b < 0x80 {
                        // One byte: envelope, kind, small ids.
                        value = UInt64(b)
                        q &+= 1
                    } else if end &- q >= 8 {
                        // Eight bytes at once (request ids are often 9–10 byte varints).
                        guard let decoded = Self.wideVarint(base, &q, end) else {
                            throw .undecodableFrame(
                                reason: ProtobufWireError.unterminatedVarint(offset: p &+ 1).description)
                        }
                        value = decoded
                    } else {
                        var shift: UInt64 = 0
                        while true {
                            guard q < end, shift < 70 else {
                                throw .undecodableFrame(
                                    reason: ProtobufWireError.unterminatedVarint(offset: p &+ 1).description)
                            }
                            let b = base.load(fromByteOffset: q, as: UInt8.self)
                            value |= UInt64(b & 0x7F) &<< shift
                            q &+= 1
                            if b < 0x80 { break }
                            shift &+= 7
                        }
                    }
                    switch tag {
                    case 0x08: envelopeVersion = UInt32(truncatingIfNeeded: value)
                    case 0x10: kind = Int32(truncatingIfNeeded: value)
                    case 0x18: payloadProtocol = UInt32(truncatingIfNeeded: value)
                    case 0x28: requestID = value
                    case 0x30: encoding = Int32(truncatingIfNeeded: value)
                    default: deadline = value
                    }
                    p = q
                case 0x22, 0x42, 0x4A:
                    var q = p &+ 1
                    var length = 0
                    var shift = 0
                    while true {
                        guard q < end, shift < 35 else {
                            throw .undecodableFrame(
                                reason: ProtobufWireError.badLengthPrefix(offset: p &+ 1).description)
                        }
                        let b = base.load(fromByteOffset: q, as: UInt8.self)
                        length |= Int(b & 0x7F) &<< shift
                        q &+= 1
                        if b < 0x80 { break }
                        shift &+= 7
                    }
                    guard length <= end &- q else {
                        throw .undecodableFrame(reason: ProtobufWireError.truncated(offset: p).description)
                    }
                    let value = Range(uncheckedBounds: (q, q &+ length))
                    switch tag {
                    case 0x22: payload = value
                    case 0x42: traceparent = Range(uncheckedBounds: (q, Self.cStringEnd(base, value)))
                    default: tracestate = Range(uncheckedBounds: (q, Self.cStringEnd(base, value)))
                    }
                    p = q &+ length
                default:
                    var scanner = ProtobufWireScanner(buffer, range: p..<end)
                    let field: ProtobufWireScanner.Field
                    do {
                        guard let next = try scanner.next() else { break }
                        field = next
                    } catch {
                        throw .undecodableFrame(reason: error.description)
                    }
                    p = scanner.offset
                    switch field.number {
                    case 1...9:
                        // A known field number that missed the fast path: a multi-byte tag
                        // or a wire type its schema does not allow.
                        let lengthDelimited = field.number == 4 || field.number >= 8
                        guard field.wireType == (lengthDelimited ? .lengthDelimited : .varint) else {
                            throw .undecodableFrame(
                                reason: ProtobufWireError.wrongWireType(
                                    field: field.number, offset: field.valueStart
                                ).description)
                        }
                        let value = field.valueStart..<(field.valueStart + field.valueLength)
                        switch field.number {
                        case 1: envelopeVersion = scanner.uint32(field)
                        case 2: kind = Int32(bitPattern: scanner.uint32(field))
                        case 3: payloadProtocol = scanner.uint32(field)
                        case 5: requestID = scanner.uint64(field)
                        case 6: encoding = Int32(bitPattern: scanner.uint32(field))
                        case 7: deadline = scanner.uint64(field)
                        case 4: payload = value
                        case 8: traceparent = value.lowerBound..<Self.cStringEnd(base, value)
                        default: tracestate = value.lowerBound..<Self.cStringEnd(base, value)
                        }
                    default:
                        continue  // unknown fields are ignored, as every reference decoder does
                    }
                }
            }
        }
        guard traceparent.isEmpty || UTF8Validation.isValid(buffer, traceparent) else {
            throw .undecodableFrame(reason: ProtobufWireError.invalidUTF8(field: 8).description)
        }
        guard tracestate.isEmpty || UTF8Validation.isValid(buffer, tracestate) else {
            throw .undecodableFrame(reason: ProtobufWireError.invalidUTF8(field: 9).description)
        }
        self.envelopeVersion = envelopeVersion
        self.kind = FrameKind(rawValue: kind)
        self.payloadProtocol = PayloadProtocol(rawValue: payloadProtocol)
        self.requestID = requestID
        self.payloadEncoding = PayloadEncoding(rawValue: encoding)
        self.deadlineUnixMilliseconds = deadline
        self.payloadRange = payload
        self.traceparentRange = traceparent
        self.tracestateRange = tracestate
    }

    /// The varint at `q` (at least 8 bytes before `end`), read with one 8-byte load: the
    /// value as the byte loop computes it (7 bits per byte, a 10th byte contributing its
    /// lowest bit), `q` moved past it; `nil` when it does not end within 10 bytes or
    /// before `end`, as the loop would throw.
    @inline(__always)
    static func wideVarint(_ base: UnsafeRawPointer, _ q: inout Int, _ end: Int) -> UInt64? {
        let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: q, as: UInt64.self))
        // The high bit of each byte that ends the varint.
        let stops = ~word & 0x8080_8080_8080_8080
        // Bytes up to and including the first stop (all 8 when there is none).
        let keep = stops == 0 ? UInt64.max : stops ^ (stops &- 1)
        var x = word & keep & 0x7F7F_7F7F_7F7F_7F7F
        x = (x & 0x007F_007F_007F_007F) | ((x & 0x7F00_7F00_7F00_7F00) &>> 1)
        x = (x & 0x0000_3FFF_0000_3FFF) | ((x & 0x3FFF_0000_3FFF_0000) &>> 2)
        x = (x & 0x0000_0000_0FFF_FFFF) | ((x & 0x0FFF_FFFF_0000_0000) &>> 4)
        if stops != 0 {
            q &+= (stops.trailingZeroBitCount &+ 1) &>> 3
            return x
        }
        // Bytes 9 and 10.
        var r = q &+ 8
        guard r < end else { return nil }
        let b8 = base.load(fromByteOffset: r, as: UInt8.self)
        x |= UInt64(b8 & 0x7F) &<< 56
        r &+= 1
        if b8 >= 0x80 {
            guard r < end else { return nil }
            let b9 = base.load(fromByteOffset: r, as: UInt8.self)
            guard b9 < 0x80 else { return nil }
            x |= UInt64(b9 & 0x7F) &<< 63
            r &+= 1
        }
        q = r
        return x
    }

    /// End of a `string` value as libprotobuf-c keeps it: at the first NUL.
    static func cStringEnd(_ base: UnsafeRawPointer, _ range: Range<Int>) -> Int {
        var i = range.lowerBound
        while i < range.upperBound, base.load(fromByteOffset: i, as: UInt8.self) != 0 { i &+= 1 }
        return i
    }

    /// The payload bytes inside `buffer` (the buffer this view was parsed from).
    @_spi(Internals) public func payload(in buffer: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[payloadRange])
    }

    /// The payload bytes inside `buffer` (the array this view was parsed from).
    @_spi(Internals) public func payload(in buffer: [UInt8]) -> ArraySlice<UInt8> { buffer[payloadRange] }

    /// Copies the frame out of `buffer` (the buffer this view was parsed from).
    @_spi(Internals) public func frame(in buffer: UnsafeRawBufferPointer) -> Frame {
        // Absent trace fields (the common case) are literals: no decoding call.
        func text(_ range: Range<Int>) -> String {
            range.isEmpty ? "" : String(decoding: UnsafeRawBufferPointer(rebasing: buffer[range]), as: UTF8.self)
        }
        return Frame(
            envelopeVersion: envelopeVersion, kind: kind, payloadProtocol: payloadProtocol,
            payload: Array(UnsafeRawBufferPointer(rebasing: buffer[payloadRange])), requestID: requestID,
            payloadEncoding: payloadEncoding, deadlineUnixMilliseconds: deadlineUnixMilliseconds,
            traceparent: text(traceparentRange), tracestate: text(tracestateRange))
    }

    /// Copies the frame out of `buffer` (the array this view was parsed from).
    @_spi(Internals) public func frame(in buffer: [UInt8]) -> Frame {
        buffer.withUnsafeBytes { frame(in: $0) }
    }
}

/// Allocation-free UTF-8 validation (RFC 3629: no overlongs, no surrogates, ≤ U+10FFFF).
enum UTF8Validation {
    static func isValid(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let b0 = buffer[i]
            if b0 < 0x80 { i += 1; continue }
            let need: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; upper = 0x9F
            case 0xF0: need = 3; lower = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; upper = 0x8F
            default: return false
            }
            guard end - i > need else { return false }
            let b1 = buffer[i + 1]
            guard b1 >= lower, b1 <= upper else { return false }
            if need >= 2 { guard buffer[i + 2] & 0xC0 == 0x80 else { return false } }
            if need == 3 { guard buffer[i + 3] & 0xC0 == 0x80 else { return false } }
            i += need + 1
        }
        return true
    }
}
