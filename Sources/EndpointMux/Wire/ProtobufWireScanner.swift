/// A zero-copy protobuf wire scanner whose acceptance rules are those of
/// libprotobuf-c 1.4 `protobuf_c_message_unpack`, so a view built on it agrees with the
/// real codec on every input (shown by the differential tests and the fuzzer):
///
/// - a tag is at most 5 bytes and field number 0 is rejected;
/// - wire types 3, 4, 6 and 7 are rejected;
/// - a varint is at most 10 bytes; a length prefix at most 5 bytes (35 bits);
/// - `uint32`/enum fields keep the low 32 bits, `uint64` fields the low 64 bits.
struct ProtobufWireScanner {
    enum WireType: UInt8 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    /// One scanned field: its number, wire type and where its value lies in the input.
    struct Field {
        var number: UInt32
        var wireType: WireType
        /// Offset of the first value byte (after any length prefix).
        var valueStart: Int
        /// Bytes of the value (after any length prefix).
        var valueLength: Int
    }

    let base: UnsafeRawPointer?
    let end: Int
    var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, range: Range<Int>) {
        self.base = bytes.baseAddress
        self.offset = range.lowerBound
        self.end = range.upperBound
    }

    func byte(_ index: Int) -> UInt8 {
        // Callers keep index < end, and end is within the buffer.
        base.unsafelyUnwrapped.load(fromByteOffset: index, as: UInt8.self)
    }

    /// The next field, `nil` at the end.
    /// - Throws: ``ProtobufWireError`` where libprotobuf-c's scan would fail.
    @inline(__always)
    mutating func next() throws(ProtobufWireError) -> Field? {
        guard offset < end else { return nil }
        let tagOffset = offset
        let first = byte(offset)
        let number: UInt32
        let rawWireType = first & 7
        if first & 0x80 == 0 {
            // One-byte tag: the common case. Field number 0 is rejected.
            guard first & 0xF8 != 0 else { throw .zeroFieldNumber(offset: offset) }
            number = UInt32(first >> 3)
            offset += 1
        } else {
            number = try slowTag()
        }
        let remaining = end - offset
        switch rawWireType {
        case 0:
            guard remaining > 0 else { throw .unterminatedVarint(offset: offset) }
            var length = 1
            if byte(offset) & 0x80 != 0 {
                let maxLength = min(10, remaining)
                length = 0
                while length < maxLength, byte(offset + length) & 0x80 != 0 { length += 1 }
                guard length < maxLength else { throw .unterminatedVarint(offset: offset) }
                length += 1
            }
            defer { offset += length }
            return Field(number: number, wireType: .varint, valueStart: offset, valueLength: length)
        case 2:
            guard remaining > 0 else { throw .badLengthPrefix(offset: offset) }
            var value = UInt64(byte(offset))
            var prefix = 1
            if value >= 0x80 {
                value &= 0x7F
                let maxPrefix = min(5, remaining)
                var shift: UInt64 = 7
                var terminated = false
                while prefix < maxPrefix {
                    let b = byte(offset + prefix)
                    value |= UInt64(b & 0x7F) &<< shift
                    shift += 7
                    prefix += 1
                    if b & 0x80 == 0 { terminated = true; break }
                }
                guard terminated else { throw .badLengthPrefix(offset: offset) }
            }
            guard value <= UInt64(remaining - prefix) else { throw .truncated(offset: tagOffset) }
            defer { offset += prefix + Int(value) }
            return Field(
                number: number, wireType: .lengthDelimited, valueStart: offset + prefix,
                valueLength: Int(value))
        case 1:
            guard remaining >= 8 else { throw .truncated(offset: tagOffset) }
            defer { offset += 8 }
            return Field(number: number, wireType: .fixed64, valueStart: offset, valueLength: 8)
        case 5:
            guard remaining >= 4 else { throw .truncated(offset: tagOffset) }
            defer { offset += 4 }
            return Field(number: number, wireType: .fixed32, valueStart: offset, valueLength: 4)
        default:
            throw .unsupportedWireType(rawWireType, offset: tagOffset)
        }
    }

    /// A tag of 2–5 bytes (libprotobuf-c's `parse_tag_and_wiretype`).
    @inline(never)
    mutating func slowTag() throws(ProtobufWireError) -> UInt32 {
        let first = byte(offset)
        guard first & 0xF8 != 0 else { throw .zeroFieldNumber(offset: offset) }
        var number = UInt32((first & 0x7F) >> 3)
        var shift: UInt32 = 4
        let maxUsed = min(5, end - offset)
        var used = 1
        while used < maxUsed {
            let b = byte(offset + used)
            used += 1
            if b & 0x80 != 0 {
                number |= UInt32(b & 0x7F) &<< shift
                shift += 7
            } else {
                number |= UInt32(b) &<< shift
                offset += used
                return number
            }
        }
        throw .badTag(offset: offset)
    }

    /// `uint64` value of a varint field (low 64 bits, as libprotobuf-c's `parse_uint64`).
    @inline(__always)
    func uint64(_ field: Field) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        for i in 0..<field.valueLength {
            value |= UInt64(byte(field.valueStart + i) & 0x7F) &<< shift
            shift += 7
        }
        return value
    }

    /// `uint32`/`int32`/enum value of a varint field: the low 32 bits, which is what
    /// libprotobuf-c's `parse_uint32` computes from the first five bytes.
    @inline(__always)
    func uint32(_ field: Field) -> UInt32 {
        if field.valueLength == 1 { return UInt32(byte(field.valueStart)) }
        return UInt32(truncatingIfNeeded: uint64(field))
    }

    /// Offset just past the value's bytes up to its first NUL: what libprotobuf-c keeps
    /// of a `string` field (it stores a C string).
    func cStringEnd(_ field: Field) -> Int {
        var i = field.valueStart
        let stop = field.valueStart + field.valueLength
        while i < stop, byte(i) != 0 { i += 1 }
        return i
    }
}

/// Why the protobuf wire scanner rejected a body.
@_spi(Internals) public enum ProtobufWireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A tag with field number 0 at `offset`.
    case zeroFieldNumber(offset: Int)
    /// A tag longer than 5 bytes or cut off at `offset`.
    case badTag(offset: Int)
    /// A varint longer than 10 bytes or cut off at `offset`.
    case unterminatedVarint(offset: Int)
    /// A length prefix longer than 5 bytes or cut off at `offset`.
    case badLengthPrefix(offset: Int)
    /// A field whose value runs past the end of the body; the tag is at `offset`.
    case truncated(offset: Int)
    /// Wire type 3, 4, 6 or 7 at `offset`.
    case unsupportedWireType(UInt8, offset: Int)
    /// Field `number` arrived with a wire type its schema does not allow.
    case wrongWireType(field: UInt32, offset: Int)
    /// String field `number` is not valid UTF-8.
    case invalidUTF8(field: UInt32)

    @_spi(Internals) public var description: String {
        switch self {
        case let .zeroFieldNumber(offset): return "field number 0 at offset \(offset)"
        case let .badTag(offset): return "bad tag at offset \(offset)"
        case let .unterminatedVarint(offset): return "unterminated varint at offset \(offset)"
        case let .badLengthPrefix(offset): return "bad length prefix at offset \(offset)"
        case let .truncated(offset): return "field at offset \(offset) runs past the end"
        case let .unsupportedWireType(type, offset): return "unsupported wire type \(type) at offset \(offset)"
        case let .wrongWireType(field, offset): return "field \(field) has the wrong wire type at offset \(offset)"
        case let .invalidUTF8(field): return "string field \(field) is not valid UTF-8"
        }
    }
}
