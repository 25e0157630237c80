/// Decides, one message at a time, what the bytes at the front of a connection are:
/// the daemon's legacy wire, an identity probe, a v1 frame on a served lane, or an error.
///
/// `EndpointMux` is a value built once per daemon and shared by every connection. It does
/// no I/O and keeps no per-connection state: ``poll(_:)`` is a pure function of the
/// buffered bytes and consumes nothing. Adapters (see `LegacyAdapters`) loop: poll, act on
/// the verdict, drop `consumed` bytes, poll again, until ``MuxVerdict/needMoreBytes``.
///
/// Decision order (running-process `BackendEndpointMux::poll`):
/// 1. empty buffer → need more bytes;
/// 2. the legacy detector: legacy or need-more wins, even when byte 0 is `0x01`;
/// 3. byte 0 ≠ `0x01` → legacy;
/// 4. partial header or body → need more; length over the cap → error (checked before the
///    body arrives); undecodable body → error;
/// 5. lane `0xB232` → validate the probe and answer it, or error;
/// 6. other first-party lanes → error; 7. lanes not served → error; 8. else payload.
public struct EndpointMux: Sendable {
    /// The identity proved to probes.
    public var identity: DaemonIdentity { responder.identity }
    /// The limits in force.
    public let limits: MuxLimits
    /// The daemon's legacy detector.
    public let legacyDetector: LegacyDetector
    /// Lanes served as payload, ascending.
    public let servedProtocols: [PayloadProtocol]

    let responder: ProbeResponder
    /// One bit per lane in `0...0xFFFF` (no service lane lies above).
    private let servedBits: [UInt64]

    /// Creates a mux.
    /// - Parameters:
    ///   - identity: what probe answers prove.
    ///   - servedProtocols: lanes delivered as ``MuxVerdict/payload(_:consumed:)``. First-party
    ///     lanes are never served, whatever this says.
    ///   - legacyDetector: the daemon's own protocol; ``LegacyDetector/never`` by default.
    ///   - limits: size limits.
    ///   - includeLegacyProbeTail: append the reserved tag-3 slot to probe answers.
    public init(
        identity: DaemonIdentity,
        servedProtocols: some Sequence<PayloadProtocol>,
        legacyDetector: LegacyDetector = .never,
        limits: MuxLimits = MuxLimits(),
        includeLegacyProbeTail: Bool = true
    ) {
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
    public func serves(_ lane: PayloadProtocol) -> Bool {
        guard lane.rawValue <= 0xFFFF else { return false }
        return servedBits[Int(lane.rawValue >> 6)] & (1 << (lane.rawValue & 63)) != 0
    }

    /// Decides what the front of `buffer` is. Pure: reads `buffer`, consumes nothing.
    /// - Throws: ``MuxError``; every error means "send the epitaph and close".
    public func poll(_ buffer: UnsafeRawBufferPointer) throws(MuxError) -> MuxVerdict {
        guard !buffer.isEmpty else { return .needMoreBytes }
        if case let .custom(classify) = legacyDetector.storage {
            switch classify(buffer) {
            case .legacy: return .legacy
            case .needMoreBytes: return .needMoreBytes
            case .notLegacy: break
            }
        }
        guard buffer[0] == V1Framing.framingByte else { return .legacy }
        return try pollFrame(buffer)
    }

    /// Decides what the front of `bytes` is; see ``poll(_:)-(UnsafeRawBufferPointer)``.
    public func poll(_ bytes: [UInt8]) throws(MuxError) -> MuxVerdict {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(MuxError) in try poll(raw) } }
        return try result.get()
    }

    /// Steps 4–8 for a buffer whose first byte is `0x01`.
    func pollFrame(_ buffer: UnsafeRawBufferPointer) throws(MuxError) -> MuxVerdict {
        // Byte 0 is 0x01 (checked by the caller); read the length, check the cap first.
        guard buffer.count >= V1Framing.headerByteCount else { return .needMoreBytes }
        let length = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 1, as: UInt32.self))
        guard UInt64(length) <= UInt64(limits.maxFrameBodyByteCount) else {
            throw .framing(.frameTooLarge(length: UInt64(length), limit: limits.maxFrameBodyByteCount))
        }
        let consumed = V1Framing.headerByteCount + Int(length)
        guard buffer.count >= consumed else { return .needMoreBytes }
        let view: FrameView
        do {
            view = try FrameView(parsingBodyIn: buffer, range: V1Framing.headerByteCount..<consumed)
        } catch {
            throw .framing(error)
        }
        let lane = view.payloadProtocol
        if lane == .identityProbe {
            let request: ProbeRequest
            do { request = try ProbeRequest(validating: view, in: buffer) } catch { throw .malformedProbe(error) }
            do {
                return .probeAnswered(
                    reply: try responder.answer(request, maxBodyByteCount: limits.maxFrameBodyByteCount),
                    consumed: consumed)
            } catch {
                throw .framing(error)
            }
        }
        if lane.isFirstParty { throw .unexpectedFirstPartyFrame(payloadProtocol: lane) }
        guard serves(lane) else { throw .unservedPayloadProtocol(payloadProtocol: lane) }
        return .payload(view, consumed: consumed)
    }
}
