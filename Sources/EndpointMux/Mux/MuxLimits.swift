/// Limits one mux enforces; exceeding any is a typed ``MuxError`` (and an epitaph),
/// never unbounded memory.
public struct MuxLimits: Hashable, Sendable {
    /// Largest v1 frame body accepted (default 16 MiB, the reference's cap; the length is
    /// checked before the body arrives).
    public var maxFrameBodyByteCount: Int

    /// Creates limits; every default is the reference's or the design's.
    public init(maxFrameBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount) {
        self.maxFrameBodyByteCount = maxFrameBodyByteCount
    }
}
