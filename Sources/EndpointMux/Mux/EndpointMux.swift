/// Decides, one message at a time, what the bytes at the front of a connection are:
/// the daemon's legacy wire, an identity probe, a v1 frame on a served lane, a JSON-FD
/// control message, or an error.
///
/// `EndpointMux` is a value built once per daemon and shared by every connection. It does
/// no I/O: `poll(_:queuedFileDescriptors:endOfInput:)` is a pure function of the
/// buffered bytes (and the number of queued fds) and consumes nothing. Adapters loop:
/// poll, act on the verdict, drop `consumed` bytes, poll again, until the verdict asks for
/// more input. A connection that carries control messages should poll through a
/// `MuxSession`, which keeps the JSON scan state between reads so a message arriving
/// in many reads is scanned once (the stateless poll rescans it from the start).
///
/// Decision order (running-process `BackendEndpointMux::poll`, plus control):
/// 1. empty buffer → need more bytes;
/// 2. the legacy detector: legacy or need-more wins, even when byte 0 is `0x01`;
/// 3. control enabled and the first non-whitespace byte is `{` → a control message;
/// 4. byte 0 ≠ `0x01` → legacy (after control traffic, whitespace before `0x01` is skipped);
/// 5. partial header or body → need more; length over the cap → error (checked before the
///    body arrives); undecodable body → error;
/// 6. lane `0xB232` → validate the probe and answer it, or error;
/// 7. other first-party lanes → error; 8. lanes not served → error; 9. else payload.
public struct EndpointMux: Sendable {
    /// The identity proved to probes.
    public var identity: DaemonIdentity { responder.identity }
    /// The limits in force.
    package let limits: MuxLimits
    /// The daemon's legacy detector.
    package let legacyDetector: LegacyDetector
    /// Lanes served as payload, ascending.
    package let servedProtocols: [PayloadProtocol]
    /// Whether JSON-FD control messages (first non-whitespace byte `{`) are accepted;
    /// when `false`, such bytes are the daemon's (legacy).
    package var acceptsControlMessages: Bool

    let responder: ProbeResponder
    /// One bit per lane in `0...0xFFFF` (no service lane lies above).
    private let servedBits: [UInt64]

    /// Creates a mux.
    /// - Parameters:
    ///   - identity: what probe answers prove.
    ///   - servedProtocols: lanes delivered as `MuxVerdict/payload(_:consumed:)`. First-party
    ///     lanes are never served, whatever this says.
    ///   - legacyDetector: the daemon's own protocol; ``LegacyDetector/never`` by default.
    ///   - limits: size limits.
    ///   - acceptsControlMessages: route `{`-led input to the JSON-FD control decoder.
    ///   - includeLegacyProbeTail: append the reserved tag-3 slot to probe answers.
    public init(
        identity: DaemonIdentity,
        servedProtocols: some Sequence<PayloadProtocol>,
        legacyDetector: LegacyDetector = .never,
        limits: MuxLimits = MuxLimits(),
        acceptsControlMessages: Bool = true,
        includeLegacyProbeTail: Bool = true
    ) {
        self.acceptsControlMessages = acceptsControlMessages
        self.responder = ProbeResponder(identity: identity, includeLegacyTail: includeLegacyProbeTail)
        self.limits = limits
        self.legacyDetector = legacyDetector
        var bits = [UInt64](repeating: 0, count: 1024)
        var served = Set<PayloadProtocol>()
        for lane in servedProtocols where lane.rawValue <= 0xFFFF && !lane.isFirstParty {
            bits[Int(lane.rawValue >> 6)] |= 1 << (lane.rawValue & 63)
            served.insert(lane)
        }
        self.servedBits = bits
        self.servedProtocols = served.sorted()
    }

    /// Whether `lane` is delivered as payload.
    package func serves(_ lane: PayloadProtocol) -> Bool {
        guard lane.rawValue <= 0xFFFF else { return false }
        return servedBits[Int(lane.rawValue >> 6)] & (1 << (lane.rawValue & 63)) != 0
    }

    /// Decides what the front of `buffer` is. Pure: reads `buffer`, consumes nothing.
    ///
    /// Control messages are decided from scratch on every call (linear in the buffered
    /// message each time); stream them through a ``MuxSession`` instead.
    /// - Parameters:
    ///   - queuedFileDescriptors: fds received and not yet claimed (control messages wait
    ///     for theirs).
    ///   - endOfInput: the peer has ended the stream.
    /// - Throws: ``MuxError``; every error means "send the epitaph and close".
    @_spi(Internals) public func poll(
        _ buffer: UnsafeRawBufferPointer, queuedFileDescriptors: Int = 0, endOfInput: Bool = false
    ) throws(MuxError) -> MuxVerdict {
        // Fast path for the per-frame hot loop: no detector and a v1 frame at the front.
        if case .never = legacyDetector.storage, buffer.first == V1Framing.framingByte, !endOfInput {
            return try pollFrame(buffer)
        }
        var session = MuxSession(mux: self)
        return try session.poll(buffer, queuedFileDescriptors: queuedFileDescriptors, endOfInput: endOfInput)
    }

    /// Decides what the front of `bytes` is; see ``poll(_:queuedFileDescriptors:endOfInput:)-(UnsafeRawBufferPointer,_,_)``.
    @_spi(Internals) public func poll(
        _ bytes: [UInt8], queuedFileDescriptors: Int = 0, endOfInput: Bool = false
    ) throws(MuxError) -> MuxVerdict {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(MuxError) in
                try poll(raw, queuedFileDescriptors: queuedFileDescriptors, endOfInput: endOfInput)
            }
        }
        return try result.get()
    }

    /// Steps 5–9 for a frame starting at `start` (where the byte is `0x01`); verdict
    /// ranges and `consumed` count from the buffer's start.
    @inline(__always)
    func pollFrame(_ buffer: UnsafeRawBufferPointer, at start: Int = 0) throws(MuxError) -> MuxVerdict {
        let status: V1Framing.HeaderStatus
        do {
            status = try V1Framing.readHeader(buffer, at: start, maxBodyByteCount: limits.maxFrameBodyByteCount)
        } catch {
            throw .framing(error)
        }
        guard case let .header(length) = status else { return .needMoreBytes }
        let consumed = start + V1Framing.headerByteCount + length
        guard buffer.count >= consumed else { return .needMoreBytes }
        let view: FrameView
        do {
            view = try FrameView(parsingBodyIn: buffer, range: (start + V1Framing.headerByteCount)..<consumed)
        } catch {
            throw .framing(error)
        }
        let lane = view.payloadProtocol
        if lane == .identityProbe {
            // Validated and answered straight from the buffer: one allocation, the answer.
            return .probeAnswered(
                reply: try responder.answer(probe: view, in: buffer, maxBodyByteCount: limits.maxFrameBodyByteCount),
                consumed: consumed)
        }
        if lane.isFirstParty { throw .unexpectedFirstPartyFrame(payloadProtocol: lane) }
        guard serves(lane) else { throw .unservedPayloadProtocol(payloadProtocol: lane) }
        return .payload(view, consumed: consumed)
    }
}
