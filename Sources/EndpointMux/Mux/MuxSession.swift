/// One connection's view of an ``EndpointMux``: the mux's decision plus the state a
/// streamed JSON-FD control message needs between reads (its incremental scan and a
/// message waiting for fds), so each byte is examined a bounded number of times however
/// the stream is split.
///
/// Still sans-IO: the caller owns the bytes and the fd queue; ``poll(_:queuedFileDescriptors:endOfInput:)``
/// reads them and consumes nothing. Between calls the buffer may only grow by appends,
/// except that after a verdict carrying `consumed` the caller drops exactly that many.
@_spi(Internals) public struct MuxSession: Sendable {
    /// The daemon's mux.
    @_spi(Internals) public let mux: EndpointMux
    private var control: ControlDecoder
    /// Whether this connection has carried a control message (its epitaphs are JSON).
    @_spi(Internals) public private(set) var hasSpokenControl = false
    /// Whether this connection has carried a v1 frame.
    @_spi(Internals) public private(set) var hasSpokenFrames = false

    /// A session for a new connection.
    @_spi(Internals) public init(mux: EndpointMux) {
        self.mux = mux
        self.control = ControlDecoder(limits: mux.limits.control)
    }

    /// Whether no control message is in progress (scanned in part or waiting for fds).
    @_spi(Internals) public var isBetweenMessages: Bool { control.isBetweenMessages }

    /// The control request waiting for its fds, if any (to answer with -32050 on close).
    @_spi(Internals) public var waitingControlMessage: ControlMessage? { control.waitingMessage }

    /// Decides what the front of `buffer` is (see ``EndpointMux``'s decision order).
    /// - Throws: ``MuxError``; every error means "send the epitaph and close".
    @_spi(Internals) public mutating func poll(
        _ buffer: UnsafeRawBufferPointer, queuedFileDescriptors: Int = 0, endOfInput: Bool = false
    ) throws(MuxError) -> MuxVerdict {
        if !control.isBetweenMessages {
            return try pollControl(buffer, queued: queuedFileDescriptors, endOfInput: endOfInput)
        }
        guard !buffer.isEmpty else { return endOfInput ? .endOfStream : .needMoreBytes }
        if case let .custom(classify) = mux.legacyDetector.storage {
            switch classify(buffer) {
            case .legacy: return .legacy
            case .needMoreBytes: return endOfInput ? .legacy : .needMoreBytes
            case .notLegacy: break
            }
        }
        var start = 0
        let first = buffer[0]
        if mux.acceptsControlMessages, first == UInt8(ascii: "{") || Self.isWhitespace(first) {
            while start < buffer.count, Self.isWhitespace(buffer[start]) { start += 1 }
            if start == buffer.count {
                if endOfInput { return .endOfStream }
                if buffer.count > mux.limits.control.maxMessageBytes {
                    throw .control(
                        .framing(
                            JSONSyntaxError(
                                offset: buffer.count,
                                reason: .whitespaceTooLong(
                                    limit: mux.limits.control.maxMessageBytes))))
                }
                return .needMoreBytes
            }
            if buffer[start] == UInt8(ascii: "{") {
                return try pollControl(buffer, queued: queuedFileDescriptors, endOfInput: endOfInput)
            }
            // Whitespace then something else: only after control traffic (continuation
            // bytes of batched fds) is it skipped; otherwise it is the daemon's.
            if !hasSpokenControl { return .legacy }
        }
        guard buffer[start] == V1Framing.framingByte else { return .legacy }
        let verdict = try mux.pollFrame(buffer, at: start)
        switch verdict {
        case .needMoreBytes where endOfInput:
            throw .truncatedFrame(bufferedByteCount: buffer.count)
        case .payload, .probeAnswered:
            hasSpokenFrames = true
        default:
            break
        }
        return verdict
    }

    private mutating func pollControl(
        _ buffer: UnsafeRawBufferPointer, queued: Int, endOfInput: Bool
    ) throws(MuxError) -> MuxVerdict {
        let step: ControlDecoderStep
        do {
            step = try control.decode(buffer, queuedFileDescriptors: queued, endOfInput: endOfInput)
        } catch {
            throw .control(error)
        }
        switch step {
        case .needMoreBytes: return .needMoreBytes
        case let .needMoreFileDescriptors(needed, queued):
            return .needMoreFileDescriptors(needed: needed, queued: queued)
        case .endOfStream: return .endOfStream
        case let .message(message, fileDescriptors, consumed):
            hasSpokenControl = true
            return .control(message, fileDescriptors: fileDescriptors, consumed: consumed)
        case let .invalid(violation, id, fileDescriptors, consumed):
            hasSpokenControl = true
            return .invalidControl(violation, id: id, fileDescriptors: fileDescriptors, consumed: consumed)
        }
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }
}
