/// A v1 payload-protocol id ("lane"): `Frame.payload_protocol`, a `u32` on the wire.
///
/// The constants and ranges are those of running-process's registry. Membership tests
/// follow the reference exactly: `isFirstParty` is a four-element list, not a range.
public struct PayloadProtocol: RawRepresentable, Hashable, Comparable, Sendable,
    ExpressibleByIntegerLiteral, CustomStringConvertible
{
    /// The id as it travels in `Frame.payload_protocol`.
    public var rawValue: UInt32

    /// Creates a lane from its wire value.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Creates a lane from an integer literal, e.g. `let lane: PayloadProtocol = 0x7A63`.
    public init(integerLiteral value: UInt32) { self.rawValue = value }

    /// Hello / HelloReply on a broker control socket (`0x0000`).
    package static let control: PayloadProtocol = 0x0000
    /// Broker admin verbs (`0xAD01`).
    package static let admin: PayloadProtocol = 0xAD01
    /// Endpoint identity probes (`0xB232`).
    package static let identityProbe: PayloadProtocol = 0xB232
    /// Connection handoff (`0xD0FF`).
    package static let handoff: PayloadProtocol = 0xD0FF
    /// Proxied session stdio (`0x5350`, "SP"); reserved first-party but not ``isFirstParty``.
    package static let session: PayloadProtocol = 0x5350
    /// Registered consumer: zccache (`0x7A63`).
    package static let zccache: PayloadProtocol = 0x7A63
    /// Registered consumer: clud (`0x7C4C`).
    package static let clud: PayloadProtocol = 0x7C4C
    /// Registered consumer: fbuild (`0x7EB1`).
    package static let fbuild: PayloadProtocol = 0x7EB1
    /// EndpointMux's default lane for v1 epitaphs (`0xFFFF`, private use).
    @usableFromInline package static let defaultEpitaph: PayloadProtocol = 0xFFFF

    /// The grandfathered first-party ids: `[0x0000, 0xAD01, 0xB232, 0xD0FF]`.
    package static let firstParty: [PayloadProtocol] = [.control, .admin, .identityProbe, .handoff]
    /// Ids reserved for first-party subsystems.
    package static let reservedFirstPartyRange: ClosedRange<UInt32> = 0x0000...0x6FFF
    /// Registered consumer ids (first come, first served).
    package static let registeredConsumerRange: ClosedRange<UInt32> = 0x7000...0x7EFF
    /// Reserved for future expansion; do not use.
    package static let futureRange: ClosedRange<UInt32> = 0x7F00...0xEFFF
    /// Private use; never registered or collision-checked.
    package static let privateUseRange: ClosedRange<UInt32> = 0xF000...0xFFFF

    /// Membership in ``firstParty`` (the reference's `is_first_party`): `0x5350` is `false`.
    package var isFirstParty: Bool {
        switch rawValue {
        case 0x0000, 0xAD01, 0xB232, 0xD0FF: return true  // `firstParty`, as a switch for the hot path
        default: return false
        }
    }
    /// In `0x7000...0x7EFF`.
    package var isRegisteredConsumer: Bool { Self.registeredConsumerRange.contains(rawValue) }
    /// In `0xF000...0xFFFF`.
    package var isPrivateUse: Bool { Self.privateUseRange.contains(rawValue) }
    /// Whether a service may serve this lane: registered consumer or private use, as the
    /// reference's `ServiceSpec` requires.
    public var isServiceLane: Bool { isRegisteredConsumer || isPrivateUse }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// `0x` and at least four upper-case hex digits, e.g. `0x7A63`.
    public var description: String {
        let hex = String(rawValue, radix: 16, uppercase: true)
        return "0x" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    /// Parses `0x7A63` (hex with a `0x` prefix) or `31331` (decimal); `nil` otherwise.
    package init?(parsing text: String) {
        let value: UInt32?
        if text.hasPrefix("0x") || text.hasPrefix("0X") {
            value = UInt32(text.dropFirst(2), radix: 16)
        } else {
            value = UInt32(text)
        }
        guard let value else { return nil }
        self.rawValue = value
    }
}
