import EndpointMux
import NIOCore

/// The per-connection decision loop shared by ``EndpointMuxHandler`` and
/// ``EndpointMuxDecoder``: it reads the front of the cumulation buffer, consumes what it
/// decided, and says what the caller must do. No I/O.
///
/// Routing of each message, in order:
/// 1. with control messages on and no control message in progress, the mux's legacy
///    detector runs first (legacy → step 3; need more → wait);
/// 2. otherwise, a first non-whitespace byte `{` starts a control message (the
///    ``ControlDecoder`` takes it, leading whitespace included); a buffer of whitespace
///    only waits for more (bounded by ``ControlLimits/maxMessageBytes``);
/// 3. everything else goes to ``EndpointMux/poll(_:)``, whose `.legacy` verdict is
///    handled by the legacy mode.
struct EndpointMuxCore {
    /// What the caller does next.
    enum Step {
        /// Wait for more bytes.
        case needMoreBytes
        /// Hand `message` to the next handler (its bytes are consumed).
        case deliver(EndpointMuxMessage)
        /// Write `bytes` to the peer (a probe answer or an Invalid Request response; the
        /// message's bytes are consumed).
        case reply([UInt8])
        /// Sticky legacy: the connection is the daemon's; nothing was consumed.
        case legacyTakeover
        /// End the connection; write ``wireBytes(for:)`` first.
        case fail(EndpointMuxFailure)
    }

    let mux: EndpointMux
    let configuration: EndpointMuxConfiguration
    private var control: ControlDecoder
    /// The control decoder has scanned bytes of a message not yet complete.
    private var controlFed = false
    /// A `{` began the message at the front: it is a control message until it completes.
    private var inControlMessage = false
    /// Leading bytes of the buffer known to be JSON whitespace.
    private var whitespaceScanned = 0
    /// The peer has spoken the daemon's legacy protocol: no epitaphs from now on.
    private(set) var spokeLegacy = false

    init(mux: EndpointMux, configuration: EndpointMuxConfiguration) {
        // Control input is routed here (with NIO's own rules for fds) before the mux is
        // asked, so the mux itself only decides legacy, probes and frames.
        var framesOnly = mux
        framesOnly.acceptsControlMessages = false
        self.mux = framesOnly
        self.configuration = configuration
        self.control = ControlDecoder(limits: configuration.controlLimits)
    }

    /// The epitaph bytes to write before closing on `failure`, if any.
    func wireBytes(for failure: EndpointMuxFailure) -> [UInt8]? {
        spokeLegacy ? nil : failure.wireBytes(epitaphLane: configuration.epitaphLane)
    }

    /// Decides the message at the front of `buffer` and consumes it.
    /// - Parameter endOfInput: the peer has closed its output; no more bytes will come.
    mutating func step(_ buffer: inout ByteBuffer, endOfInput: Bool) -> Step {
        guard buffer.readableBytes > 0 else { return .needMoreBytes }
        if configuration.acceptsControlMessages {
            switch route(buffer) {
            case .needMoreBytes: return .needMoreBytes
            case .control: return controlStep(&buffer, endOfInput: endOfInput)
            case .mux: break
            }
        }
        return muxStep(&buffer)
    }

    // MARK: - Routing

    private enum Route { case needMoreBytes, control, mux }

    private mutating func route(_ buffer: ByteBuffer) -> Route {
        if inControlMessage { return .control }
        let detector = mux.legacyDetector
        switch buffer.withUnsafeReadableBytes({ detector($0) }) {
        case .legacy: return .mux
        case .needMoreBytes: return .needMoreBytes
        case .notLegacy: break
        }
        let view = buffer.readableBytesView
        var index = view.startIndex + whitespaceScanned
        while index < view.endIndex, Self.isWhitespace(view[index]) { index += 1 }
        whitespaceScanned = index - view.startIndex
        guard index < view.endIndex else { return .control }  // only whitespace: the decoder bounds it
        if view[index] == UInt8(ascii: "{") {
            inControlMessage = true
            return .control
        }
        if controlFed {
            // The decoder scanned leading whitespace of what turned out not to be JSON.
            control = ControlDecoder(limits: configuration.controlLimits)
            controlFed = false
        }
        return .mux
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private mutating func consume(_ buffer: inout ByteBuffer, _ count: Int) {
        buffer.moveReaderIndex(forwardBy: min(max(0, count), buffer.readableBytes))
        whitespaceScanned = 0
    }

    // MARK: - Control messages

    private mutating func controlStep(_ buffer: inout ByteBuffer, endOfInput: Bool) -> Step {
        // SwiftNIO delivers no file descriptors. Reporting an unbounded queue makes the
        // decoder hand over every complete message at once with the count it declared;
        // a message that declared any is refused below instead of waiting for fds that
        // can never arrive.
        let result = buffer.withUnsafeReadableBytes { raw in
            Result { () throws(ControlError) in
                try control.decode(raw, queuedFileDescriptors: Int.max, endOfInput: endOfInput)
            }
        }
        let decoded: ControlDecoderStep
        switch result {
        case let .success(step): decoded = step
        case let .failure(error): return .fail(.control(error))
        }
        switch decoded {
        case .needMoreBytes, .endOfStream:
            controlFed = true
            return .needMoreBytes
        case let .needMoreFileDescriptors(needed, _):
            return .fail(.fileDescriptorsUnsupported(declared: needed, requestID: nil))
        case let .message(message, fileDescriptors, consumed):
            finishControlMessage(&buffer, consumed)
            guard fileDescriptors == 0 else {
                let id: JSONRPCID? = if case let .request(request) = message { request.id } else { nil }
                return .fail(.fileDescriptorsUnsupported(declared: fileDescriptors, requestID: id))
            }
            return .deliver(.control(message))
        case let .invalid(violation, id, fileDescriptors, consumed):
            finishControlMessage(&buffer, consumed)
            guard fileDescriptors == 0 else {
                return .fail(.fileDescriptorsUnsupported(declared: fileDescriptors, requestID: id))
            }
            let response = ControlResponse(
                id: id ?? .null, error: .invalidRequest(data: .string(violation.description)))
            return .reply(ControlMessage.response(response).encoded())
        }
    }

    private mutating func finishControlMessage(_ buffer: inout ByteBuffer, _ consumed: Int) {
        consume(&buffer, consumed)
        controlFed = false
        inControlMessage = false
    }

    // MARK: - The mux

    private enum MuxOutcome {
        case needMoreBytes
        case legacy(firstByte: UInt8)
        case probe(reply: [UInt8], consumed: Int)
        case frame(Frame, consumed: Int)
        case failed(MuxError)
    }

    private mutating func muxStep(_ buffer: inout ByteBuffer) -> Step {
        let mux = self.mux
        let outcome = buffer.withUnsafeReadableBytes { raw -> MuxOutcome in
            do throws(MuxError) {
                switch try mux.poll(raw) {
                case .needMoreBytes: return .needMoreBytes
                case .legacy: return .legacy(firstByte: raw.first ?? 0)
                case let .probeAnswered(reply, consumed): return .probe(reply: reply, consumed: consumed)
                case let .payload(view, consumed): return .frame(view.frame(in: raw), consumed: consumed)
                case .needMoreFileDescriptors, .endOfStream: return .needMoreBytes
                case .control, .invalidControl:
                    // Control input is routed to `controlStep` before the mux is asked.
                    return .legacy(firstByte: raw.first ?? 0)
                }
            } catch {
                return .failed(error)
            }
        }
        switch outcome {
        case .needMoreBytes:
            return .needMoreBytes
        case let .probe(reply, consumed):
            consume(&buffer, consumed)
            return .reply(reply)
        case let .frame(frame, consumed):
            consume(&buffer, consumed)
            return .deliver(.frame(frame))
        case let .failed(error):
            return .fail(.mux(error))
        case let .legacy(firstByte):
            switch configuration.legacyMode {
            case .reject:
                return .fail(.legacyRejected(firstByte: firstByte))
            case .sticky:
                spokeLegacy = true
                return .legacyTakeover
            case let .perMessage(decoder):
                return legacyStep(&buffer, decoder)
            }
        }
    }

    private mutating func legacyStep(_ buffer: inout ByteBuffer, _ decoder: EndpointMuxLegacyDecoder) -> Step {
        spokeLegacy = true
        var candidate = buffer
        let message: ByteBuffer?
        do {
            message = try decoder.decode(&candidate)
        } catch {
            return .fail(.legacyDecoderFailed(reason: String(describing: error)))
        }
        guard let message else {
            if buffer.readableBytes > configuration.maxLegacyMessageByteCount {
                return .fail(.legacyMessageTooLarge(limit: configuration.maxLegacyMessageByteCount))
            }
            return .needMoreBytes
        }
        let consumed = candidate.readerIndex - buffer.readerIndex
        guard consumed > 0, consumed <= buffer.readableBytes else {
            return .fail(.legacyDecoderFailed(
                reason: "returned a message after consuming \(consumed) of \(buffer.readableBytes) bytes"))
        }
        consume(&buffer, consumed)
        return .deliver(.legacy(message))
    }
}
