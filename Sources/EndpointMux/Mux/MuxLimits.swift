/// Limits one mux enforces; exceeding any is a typed `MuxError` (and an epitaph),
/// never unbounded memory.
public struct MuxLimits: Hashable, Sendable {
    /// Largest v1 frame body accepted (default 16 MiB, the reference's cap; the length is
    /// checked before the body arrives).
    public var maxFrameBodyByteCount: Int
    /// JSON-FD control limits: message size (16 MiB), nesting (128), fds per message (1024).
    public var control: ControlLimits
    /// Most received fds a connection may hold queued before they are claimed (4096);
    /// adapters enforce it.
    public var maxQueuedFileDescriptors: Int

    /// Creates limits; every default is the reference's or the design's.
    public init(
        maxFrameBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount,
        control: ControlLimits = ControlLimits(),
        maxQueuedFileDescriptors: Int = 4096
    ) {
        self.maxFrameBodyByteCount = maxFrameBodyByteCount
        self.control = control
        self.maxQueuedFileDescriptors = maxQueuedFileDescriptors
    }
}
