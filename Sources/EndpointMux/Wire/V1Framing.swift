/// The v1 framing layer: `[0x01][u32 little-endian body length][body]`.
///
/// Pure functions over borrowed bytes; nothing here allocates or consumes input.
@usableFromInline package enum V1Framing {
    /// The framing byte that opens every v1 frame (`FRAMING_VERSION_V1`).
    package static let framingByte: UInt8 = 0x01
    /// `Frame.envelope_version` of every frame EndpointMux writes (`PROTOCOL_VERSION`).
    @usableFromInline package static let envelopeVersion: UInt32 = 1
    /// Bytes before the body: the framing byte and the length.
    package static let headerByteCount = 5
    /// The reference's body cap, 16 MiB; a body of exactly this size is allowed.
    @usableFromInline package static let defaultMaxBodyByteCount = 16 * 1024 * 1024

    /// What the front of a buffer holds.
    package enum HeaderStatus: Hashable, Sendable {
        /// Fewer than ``headerByteCount`` bytes.
        case needMoreBytes
        /// A complete header announcing `bodyByteCount` bytes; the frame ends at
        /// `headerByteCount + bodyByteCount`.
        case header(bodyByteCount: Int)
    }

    /// Reads the header at the front of `buffer`.
    ///
    /// The cap is checked before the body has arrived, so a peer cannot make the caller
    /// wait for (or buffer) more than `maxBodyByteCount` bytes.
    /// - Throws: ``FramingError/unsupportedFramingVersion(_:)`` when byte 0 is not `0x01`,
    ///   ``FramingError/frameTooLarge(length:limit:)`` when the length exceeds the cap.
    /// - Parameter start: where the frame starts in `buffer` (0 by default).
    @inline(__always)
    package static func readHeader(
        _ buffer: UnsafeRawBufferPointer, at start: Int = 0, maxBodyByteCount: Int = defaultMaxBodyByteCount
    ) throws(FramingError) -> HeaderStatus {
        guard start < buffer.count else { return .needMoreBytes }
        let first = buffer[start]
        guard first == framingByte else { throw .unsupportedFramingVersion(first) }
        guard buffer.count - start >= headerByteCount else { return .needMoreBytes }
        let length = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: start + 1, as: UInt32.self))
        guard UInt64(length) <= UInt64(maxBodyByteCount) else {
            throw .frameTooLarge(length: UInt64(length), limit: maxBodyByteCount)
        }
        return .header(bodyByteCount: Int(length))
    }

    /// The 5 header bytes for a body of `bodyByteCount` bytes.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)`` above `maxBodyByteCount`.
    package static func header(
        bodyByteCount: Int, maxBodyByteCount: Int = defaultMaxBodyByteCount
    ) throws(FramingError) -> [UInt8] {
        guard bodyByteCount >= 0, bodyByteCount <= maxBodyByteCount, bodyByteCount <= Int(UInt32.max) else {
            throw .frameTooLarge(length: UInt64(max(0, bodyByteCount)), limit: maxBodyByteCount)
        }
        let length = UInt32(bodyByteCount)
        return [
            framingByte, UInt8(truncatingIfNeeded: length), UInt8(truncatingIfNeeded: length >> 8),
            UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 24),
        ]
    }
}

/// Errors of the framing and envelope layer.
@_spi(Internals) public enum FramingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Byte 0 of a frame was not `0x01`.
    case unsupportedFramingVersion(UInt8)
    /// The header announced `length` body bytes, more than `limit`.
    case frameTooLarge(length: UInt64, limit: Int)
    /// The body is not a valid protobuf `Frame`; `reason` says where it broke.
    case undecodableFrame(reason: String)
    /// A protobuf message inside a frame (e.g. `DaemonProcess`, `Epitaph`) did not decode.
    case undecodableMessage(type: String, reason: String)
    /// The input ended inside a frame.
    case truncated(expected: Int, available: Int)

    @_spi(Internals) public var description: String {
        switch self {
        case let .unsupportedFramingVersion(byte):
            return "unsupported framing version byte 0x\(String(byte, radix: 16))"
        case let .frameTooLarge(length, limit):
            return "frame body of \(length) bytes exceeds the \(limit)-byte limit"
        case let .undecodableFrame(reason):
            return "frame body is not a valid protobuf Frame: \(reason)"
        case let .undecodableMessage(type, reason):
            return "\(type) did not decode: \(reason)"
        case let .truncated(expected, available):
            return "input ended inside a frame: \(available) of \(expected) bytes"
        }
    }
}
