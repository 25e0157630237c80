/// `Frame.kind`: an open enum, so values a newer peer sends survive a round trip.
public struct FrameKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The protobuf enum value.
    public var rawValue: Int32
    /// Creates a kind from its wire value.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// A request; responses echo its request id.
    public static let request = FrameKind(rawValue: 0)
    /// A response to a request.
    public static let response = FrameKind(rawValue: 1)
    /// A server push (also the carrier of v1 epitaphs).
    public static let event = FrameKind(rawValue: 2)
    /// Reserved for cancelling a request.
    public static let cancel = FrameKind(rawValue: 3)

    public var description: String {
        switch self {
        case .request: return "REQUEST"
        case .response: return "RESPONSE"
        case .event: return "EVENT"
        case .cancel: return "CANCEL"
        default: return "KIND(\(rawValue))"
        }
    }
}

/// `Frame.payload_encoding`: an open enum; only ``none`` is ever produced.
public struct PayloadEncoding: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The protobuf enum value.
    public var rawValue: Int32
    /// Creates an encoding from its wire value.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The payload is not compressed.
    public static let none = PayloadEncoding(rawValue: 0)
    /// zstd-compressed payload.
    public static let zstd = PayloadEncoding(rawValue: 1)
    /// Snappy-compressed payload.
    public static let snappy = PayloadEncoding(rawValue: 2)
    /// LZ4-compressed payload.
    public static let lz4 = PayloadEncoding(rawValue: 3)

    public var description: String {
        switch self {
        case .none: return "NONE"
        case .zstd: return "ZSTD"
        case .snappy: return "SNAPPY"
        case .lz4: return "LZ4"
        default: return "ENCODING(\(rawValue))"
        }
    }
}
