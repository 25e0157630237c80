/// What ``ControlDecoder/decode(_:queuedFileDescriptors:endOfInput:)`` asks for or
/// delivers.
package enum ControlDecoderStep: Hashable, Sendable {
    /// Read more bytes. Nothing is to be consumed yet.
    case needMoreBytes
    /// A complete message declared `needed` fds and only `queued` are in the caller's
    /// queue: read more (only whitespace may arrive meanwhile). Later messages wait.
    case needMoreFileDescriptors(needed: Int, queued: Int)
    /// A message: the caller removes `consumed` bytes from the front of its buffer
    /// (leading whitespace and the message) and dequeues the first `fileDescriptors`
    /// fds from its queue, positions 0..<`fileDescriptors`.
    case message(ControlMessage, fileDescriptors: Int, consumed: Int)
    /// A complete, well-framed JSON object that is not JSON-RPC 2.0. Framing is intact:
    /// the caller removes `consumed` bytes, dequeues and closes `fileDescriptors` fds,
    /// may answer -32600 Invalid Request with `id` (the object's `id` if it was a
    /// number, string or `null`), and goes on.
    case invalid(JSONRPCViolation, id: JSONRPCID?, fileDescriptors: Int, consumed: Int)
    /// The peer ended the stream cleanly: no partial message and no message waiting for
    /// fds. Any bytes left are whitespace; any fds still queued are surplus and the
    /// caller closes them.
    case endOfStream
}

/// The jsonrpc-fdpass receiver (spec §5) for one connection, as a sans-IO state
/// machine.
///
/// The caller owns the byte buffer and the FIFO queue of received fds; the decoder only
/// reads them. After every read the caller appends the bytes and fds, then calls
/// ``decode(_:queuedFileDescriptors:endOfInput:)`` until it returns `.needMoreBytes`,
/// `.needMoreFileDescriptors` or `.endOfStream`, acting on each `.message` / `.invalid`
/// (remove the consumed bytes, dequeue the fds) before the next call.
///
/// Scanning is incremental: a message that arrives in many reads is scanned once, each
/// byte examined O(1) times; the complete message is then parsed once. Rules:
/// - Whitespace (SP, HT, LF, CR) before a message belongs to that message's `consumed`;
///   whitespace after it stays in the buffer until the next message.
/// - `fds` absent, `null`, `0` or `-0` means 0. Otherwise it must be a non-negative
///   integer written without fraction or exponent (`1.0` and `1e0` are refused, like
///   Rust's typed decoding) and at most ``ControlLimits/maxFileDescriptorsPerMessage``.
///   For duplicate `fds` members the last wins. Anything else is fatal: the fd count,
///   and so every later fd's owner, is unknown.
/// - A complete message waits until the queue holds its fds and blocks later messages.
///   Meanwhile any byte other than whitespace, or the end of input, is
///   ``ControlError/mismatchedCount(expected:queued:)``. Fds are counted first, so a
///   byte that arrives together with the last missing fd completes the message and is
///   then read as the start of the next one. Surplus fds stay queued for later
///   messages (FIFO, as in the references).
/// - End of input with only whitespace buffered is a clean end (`.endOfStream`); inside
///   a message it is ``ControlError/truncatedAtEndOfInput(received:)`` (the references
///   report a plain close).
///
/// Thrown errors are fatal and sticky: every later call throws the same error. The
/// caller then closes the connection and every fd in its queue.
package struct ControlDecoder: Sendable {
    /// The limits in force.
    package let limits: ControlLimits

    private var scanner: JSONScanner
    private var pending: Pending?
    private var failure: ControlError?
    /// Bytes after a waiting message checked for non-whitespace (for tests of linear work).
    private var whitespaceExamined = 0

    /// A complete message waiting for its fds.
    private struct Pending: Sendable {
        var step: ControlDecoderStep
        var fileDescriptors: Int
        var consumed: Int
        /// Bytes from `consumed` up to here are known to be whitespace.
        var checked: Int
    }

    /// Creates the decoder for a new connection.
    package init(limits: ControlLimits = .init()) {
        self.limits = limits
        self.scanner = JSONScanner(limits: limits.jsonLimits, requiresObject: true)
    }

    /// Whether the decoder is between messages: no value started, none waiting for fds.
    package var isBetweenMessages: Bool { pending == nil && scanner.valueStart == nil }

    /// The complete message waiting for its fds, if any (e.g. to answer it with an error
    /// before closing).
    package var waitingMessage: ControlMessage? {
        if case let .message(message, _, _)? = pending?.step { return message }
        return nil
    }

    /// Bytes examined so far across all calls (for tests of linear work).
    internal var bytesExamined: Int { scanner.bytesExamined + whitespaceExamined }

    /// Takes the next step of the receiver algorithm.
    ///
    /// - Parameters:
    ///   - buffer: Every unconsumed byte, oldest first. Between calls it may only grow by
    ///     appends, except that after `.message` or `.invalid` the caller removes exactly
    ///     the consumed bytes.
    ///   - queuedFileDescriptors: How many fds the caller's queue holds now.
    ///   - endOfInput: The peer has ended the stream; no more bytes or fds will come.
    /// - Throws: A fatal ``ControlError``; the connection must be closed.
    package mutating func decode(
        _ buffer: UnsafeRawBufferPointer,
        queuedFileDescriptors: Int,
        endOfInput: Bool
    ) throws(ControlError) -> ControlDecoderStep {
        if let failure { throw failure }
        do throws(ControlError) {
            return try step(buffer, queued: queuedFileDescriptors, endOfInput: endOfInput)
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func step(
        _ buffer: UnsafeRawBufferPointer,
        queued: Int,
        endOfInput: Bool
    ) throws(ControlError) -> ControlDecoderStep {
        if pending == nil {
            switch scanner.scan(buffer, endOfInput: endOfInput) {
            case .needMore:
                // At the end of input the scanner reports a value cut short as a failure,
                // so `.needMore` there means only whitespace was left.
                return endOfInput ? .endOfStream : .needMoreBytes
            case let .failed(error):
                throw ControlError(error, valueStart: scanner.valueStart)
            case let .complete(valueStart, end):
                pending = try makePending(buffer, valueStart: valueStart, end: end)
            }
        }
        guard var waiting = pending else { return .needMoreBytes }

        if queued >= waiting.fileDescriptors {
            pending = nil
            scanner.reset()
            return waiting.step
        }
        // Short of fds: only whitespace may follow the message.
        var offset = waiting.checked
        while offset < buffer.count {
            guard isWhitespace(buffer[offset]) else {
                throw .mismatchedCount(expected: waiting.fileDescriptors, queued: queued)
            }
            offset += 1
        }
        whitespaceExamined += offset - waiting.checked
        waiting.checked = offset
        pending = waiting
        if endOfInput {
            throw .mismatchedCount(expected: waiting.fileDescriptors, queued: queued)
        }
        if offset - waiting.consumed > limits.maxMessageBytes {
            throw .framing(
                JSONSyntaxError(
                    offset: waiting.consumed + limits.maxMessageBytes,
                    reason: .whitespaceTooLong(limit: limits.maxMessageBytes)))
        }
        return .needMoreFileDescriptors(needed: waiting.fileDescriptors, queued: queued)
    }

    /// Parses the scanned message and reads its `fds`.
    private func makePending(
        _ buffer: UnsafeRawBufferPointer, valueStart: Int, end: Int
    ) throws(ControlError)
        -> Pending
    {
        let value: JSONValue
        do throws(JSONSyntaxError) {
            value = try JSONValue(scanned: buffer, from: valueStart, to: end, maxDepth: limits.maxDepth)
        } catch {
            throw ControlError(error, valueStart: valueStart)
        }
        guard case let .object(object) = value else { throw .topLevelNotObject(value.kind) }
        let count = try Self.fileDescriptorCount(in: object, limit: limits.maxFileDescriptorsPerMessage)
        let step: ControlDecoderStep
        do throws(ControlError) {
            step = .message(try ControlMessage(parsing: value), fileDescriptors: count, consumed: end)
        } catch {
            guard case let .invalidJSONRPC(violation) = error else { throw error }
            let id = object["id"].flatMap { JSONRPCID($0) }
            step = .invalid(violation, id: id, fileDescriptors: count, consumed: end)
        }
        return Pending(step: step, fileDescriptors: count, consumed: end, checked: end)
    }

    /// The number of fds `object` declares (see the type's rules for `fds`).
    static func fileDescriptorCount(in object: JSONObject, limit: Int) throws(ControlError) -> Int {
        guard let value = object["fds"] else { return 0 }
        switch value {
        case .null:
            return 0
        case let .number(number):
            let text = number.text
            guard number.isInteger else { throw .invalidFileDescriptorCount(found: text) }
            if text.utf8.first == UInt8(ascii: "-") {
                // The grammar allows no leading zeros, so "-0" is the only negative zero.
                guard text == "-0" else { throw .invalidFileDescriptorCount(found: text) }
                return 0
            }
            let count = Int(text) ?? Int.max
            guard count <= limit else { throw .tooManyFileDescriptors(count: count, limit: limit) }
            return count
        case .bool, .string, .array, .object:
            throw .invalidFileDescriptorCount(found: briefDescription(of: value))
        }
    }
}
