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

    /// The next field, `nil` at the end, or an error string for malformed input.
    mutating func next() -> Result<Field, ProtobufWireError>? {
        guard offset < end else { return nil }
        // Tag: at most 5 bytes, field number 0 rejected.
        let first = byte(offset)
        guard first & 0xF8 != 0 else { return .failure(.zeroFieldNumber(offset: offset)) }
        let rawWireType = first & 7
        var number = UInt32((first & 0x7F) >> 3)
        var used = 1
        if first & 0x80 != 0 {
            var shift: UInt32 = 4
            let maxUsed = min(5, end - offset)
            var terminated = false
            while used < maxUsed {
                let b = byte(offset + used)
                used += 1
                if b & 0x80 != 0 {
                    number |= UInt32(b & 0x7F) &<< shift
                    shift += 7
                } else {
                    number |= UInt32(b) &<< shift
                    terminated = true
                    break
                }
            }
            guard terminated else { return .failure(.badTag(offset: offset)) }
        }
        let tagOffset = offset
        offset += used
        let remaining = end - offset
        switch rawWireType {
        case 0:
            let maxLength = min(10, remaining)
            var length = 0
            while length < maxLength, byte(offset + length) & 0x80 != 0 { length += 1 }
            guard length < maxLength else { return .failure(.unterminatedVarint(offset: offset)) }
            let field = Field(number: number, wireType: .varint, valueStart: offset, valueLength: length + 1)
            offset += length + 1
            return .success(field)
        case 1:
            guard remaining >= 8 else { return .failure(.truncated(offset: tagOffset)) }
            let field = Field(number: number, wireType: .fixed64, valueStart: offset, valueLength: 8)
            offset += 8
            return .success(field)
        case 5:
            guard remaining >= 4 else { return .failure(.truncated(offset: tagOffset)) }
            let field = Field(number: number, wireType: .fixed32, valueStart: offset, valueLength: 4)
            offset += 4
            return .success(field)
        case 2:
            let maxPrefix = min(5, remaining)
            var value: UInt64 = 0
            var shift: UInt64 = 0
            var prefix = 0
            var terminated = false
            while prefix < maxPrefix {
                let b = byte(offset + prefix)
                value |= UInt64(b & 0x7F) &<< shift
                shift += 7
                prefix += 1
                if b & 0x80 == 0 { terminated = true; break }
            }
            guard terminated else { return .failure(.badLengthPrefix(offset: offset)) }
            guard value <= UInt64(remaining - prefix) else { return .failure(.truncated(offset: tagOffset)) }
            let field = Field(number: number, wireType: .lengthDelimited, valueStart: offset + prefix,
                              valueLength: Int(value))
            offset += prefix + Int(value)
            return .success(field)
        default:
            return .failure(.unsupportedWireType(rawWireType, offset: tagOffset))
        }
    }

    /// `uint32`/`int32`/enum value of a varint field, as libprotobuf-c's `parse_uint32`.
    func uint32(_ field: Field) -> UInt32 {
        let n = field.valueLength
        var value = UInt32(byte(field.valueStart) & 0x7F)
        if n > 1 { value |= UInt32(byte(field.valueStart + 1) & 0x7F) &<< 7 }
        if n > 2 { value |= UInt32(byte(field.valueStart + 2) & 0x7F) &<< 14 }
        if n > 3 { value |= UInt32(byte(field.valueStart + 3) & 0x7F) &<< 21 }
        if n > 4 { value |= UInt32(byte(field.valueStart + 4)) &<< 28 }
        return value
    }

    /// `uint64` value of a varint field, as libprotobuf-c's `parse_uint64`.
    func uint64(_ field: Field) -> UInt64 {
        if field.valueLength < 5 { return UInt64(uint32(field)) }
        var value: UInt64 = 0
        var shift: UInt64 = 0
        for i in 0..<field.valueLength {
            value |= UInt64(byte(field.valueStart + i) & 0x7F) &<< shift
            shift += 7
        }
        return value
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
public enum ProtobufWireError: Error, Hashable, Sendable, CustomStringConvertible {
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

    public var description: String {
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
