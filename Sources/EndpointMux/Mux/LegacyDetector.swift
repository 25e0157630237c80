/// What a legacy detector says about the bytes at the front of a connection's buffer.
public enum LegacyClassification: Hashable, Sendable {
    /// The bytes are the daemon's own protocol; the daemon's decoder takes them.
    case legacy
    /// The bytes are not the daemon's protocol; the mux decides.
    case notLegacy
    /// Too few bytes to tell; ask again with more.
    case needMoreBytes
}

/// Recognises a daemon's own wire protocol. It runs before anything else in
/// `EndpointMux/poll(_:)` and wins ties, even when byte 0 is `0x01`.
///
/// A detector is a pure function of the buffered bytes: it must not keep state and must
/// answer ``LegacyClassification/needMoreBytes`` rather than guess when it cannot tell.
public struct LegacyDetector: Sendable {
    enum Storage: Sendable {
        case never
        case custom(@Sendable (UnsafeRawBufferPointer) -> LegacyClassification)
    }

    let storage: Storage

    /// Wraps a closure that classifies the front of a buffer (never empty when called).
    public init(_ classify: @escaping @Sendable (UnsafeRawBufferPointer) -> LegacyClassification) {
        self.storage = .custom(classify)
    }

    private init() { self.storage = .never }

    /// Never legacy: every byte goes to the mux (the running-process service's choice).
    public static let never = LegacyDetector()

    /// Classifies `bytes`; an empty buffer needs more bytes.
    package func callAsFunction(_ bytes: UnsafeRawBufferPointer) -> LegacyClassification {
        guard !bytes.isEmpty else { return .needMoreBytes }
        switch storage {
        case .never: return .notLegacy
        case let .custom(classify): return classify(bytes)
        }
    }
}
