/// A zero-copy view of one v1 `Frame` inside a caller's buffer.
///
/// Holds the envelope's scalar fields and the *offsets* of the payload and trace fields
/// in the buffer that was parsed, so building one never allocates and never copies the
/// payload. Offsets are relative to that buffer's start; read the bytes back with
/// ``payload(in:)`` while the buffer is still unchanged.
///
/// Acceptance and field values agree with libprotobuf-c (``Frame/init(parsingBody:)``)
/// on every input: string fields end at their first NUL and must be valid UTF-8.
public struct FrameView: Hashable, Sendable {
    /// `Frame.envelope_version`.
    public var envelopeVersion: UInt32
    /// `Frame.kind`.
    public var kind: FrameKind
    /// `Frame.payload_protocol`.
    public var payloadProtocol: PayloadProtocol
    /// `Frame.request_id`.
    public var requestID: UInt64
    /// `Frame.payload_encoding`.
    public var payloadEncoding: PayloadEncoding
    /// `Frame.deadline_unix_ms`.
    public var deadlineUnixMilliseconds: UInt64
    /// Where the payload lies in the parsed buffer (empty when absent).
    public var payloadRange: Range<Int>
    /// Where `traceparent` lies in the parsed buffer (empty when absent).
    public var traceparentRange: Range<Int>
    /// Where `tracestate` lies in the parsed buffer (empty when absent).
    public var tracestateRange: Range<Int>

    /// Parses the frame body occupying `range` of `buffer`.
    /// - Throws: ``FramingError/undecodableFrame(reason:)`` when libprotobuf-c would reject it.
    public init(parsingBodyIn buffer: UnsafeRawBufferPointer, range: Range<Int>) throws(FramingError) {
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
        var scanner = ProtobufWireScanner(buffer, range: range)
        while let next = scanner.next() {
            let field: ProtobufWireScanner.Field
            switch next {
            case let .success(f): field = f
            case let .failure(error): throw .undecodableFrame(reason: error.description)
            }
            switch field.number {
            case 1, 2, 3, 5, 6, 7:
                guard field.wireType == .varint else {
                    throw .undecodableFrame(reason: ProtobufWireError.wrongWireType(
                        field: field.number, offset: field.valueStart).description)
                }
                switch field.number {
                case 1: envelopeVersion = scanner.uint32(field)
                case 2: kind = Int32(bitPattern: scanner.uint32(field))
                case 3: payloadProtocol = scanner.uint32(field)
                case 5: requestID = scanner.uint64(field)
                case 6: encoding = Int32(bitPattern: scanner.uint32(field))
                default: deadline = scanner.uint64(field)
                }
            case 4, 8, 9:
                guard field.wireType == .lengthDelimited else {
                    throw .undecodableFrame(reason: ProtobufWireError.wrongWireType(
                        field: field.number, offset: field.valueStart).description)
                }
                if field.number == 4 {
                    payload = field.valueStart..<(field.valueStart + field.valueLength)
                } else {
                    let value = field.valueStart..<scanner.cStringEnd(field)
                    if field.number == 8 { traceparent = value } else { tracestate = value }
                }
            default:
                continue  // unknown fields are ignored, as every reference decoder does
            }
        }
        guard UTF8Validation.isValid(buffer, traceparent) else {
            throw .undecodableFrame(reason: ProtobufWireError.invalidUTF8(field: 8).description)
        }
        guard UTF8Validation.isValid(buffer, tracestate) else {
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

    /// The payload bytes inside `buffer` (the buffer this view was parsed from).
    public func payload(in buffer: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[payloadRange])
    }

    /// The payload bytes inside `buffer` (the array this view was parsed from).
    public func payload(in buffer: [UInt8]) -> ArraySlice<UInt8> { buffer[payloadRange] }

    /// Copies the frame out of `buffer` (the buffer this view was parsed from).
    public func frame(in buffer: UnsafeRawBufferPointer) -> Frame {
        Frame(envelopeVersion: envelopeVersion, kind: kind, payloadProtocol: payloadProtocol,
              payload: Array(UnsafeRawBufferPointer(rebasing: buffer[payloadRange])), requestID: requestID,
              payloadEncoding: payloadEncoding, deadlineUnixMilliseconds: deadlineUnixMilliseconds,
              traceparent: String(decoding: UnsafeRawBufferPointer(rebasing: buffer[traceparentRange]), as: UTF8.self),
              tracestate: String(decoding: UnsafeRawBufferPointer(rebasing: buffer[tracestateRange]), as: UTF8.self))
    }

    /// Copies the frame out of `buffer` (the array this view was parsed from).
    public func frame(in buffer: [UInt8]) -> Frame {
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
