public import EndpointMux

/// Why ``EndpointMuxHandler`` or ``EndpointMuxDecoder`` ended a connection; delivered as
/// ``EndpointMuxEvent/failed(_:)``.
///
/// Each failure says what the peer was told before the output side was closed: a v1
/// epitaph frame, a JSON-RPC `rpc.epitaph` notification, or nothing (legacy peers, and
/// every failure on a connection that has already carried a legacy message, get no
/// epitaph, as with the POSIX adapter).
public enum EndpointMuxFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// The mux refused a v1 frame or probe: answered with the v1 epitaph
    /// ``MuxError/epitaph``.
    case mux(MuxError)
    /// ``EndpointMuxLegacyMode/reject``: the bytes were not v1 (`firstByte` was not
    /// `0x01`) and the daemon has no legacy protocol. Answered with a v1
    /// ``EpitaphStatus/invalidFrame`` epitaph.
    case legacyRejected(firstByte: UInt8)
    /// A fatal control-layer error (bad JSON, limits, `fds` not a valid count, input
    /// ended inside a message): answered with an `rpc.epitaph` notification.
    case control(ControlError)
    /// A control message declared `declared` file descriptors, which SwiftNIO cannot
    /// receive. Answered, when the message was a request (or carried an id), with a
    /// JSON-RPC error response -32050 for `requestID`, then with an `rpc.epitaph`
    /// notification (``EpitaphStatus/notSupported``, code -32050).
    case fileDescriptorsUnsupported(declared: Int, requestID: JSONRPCID?)
    /// Per-message legacy mode: more than `limit` bytes buffered without a complete
    /// legacy message. No epitaph.
    case legacyMessageTooLarge(limit: Int)
    /// Per-message legacy mode: the daemon's legacy decoder threw, or returned a message
    /// without consuming bytes. No epitaph.
    case legacyDecoderFailed(reason: String)

    /// The epitaph this failure calls for (status and reason), whichever framing carries
    /// it; `nil` for legacy failures, which get none.
    public var epitaph: Epitaph? {
        switch self {
        case let .mux(error):
            return error.epitaph
        case let .legacyRejected(byte):
            return Epitaph(status: .invalidFrame, reason: FramingError.unsupportedFramingVersion(byte).description)
        case let .control(error):
            return Epitaph(status: error.epitaphStatus, reason: error.description)
        case .fileDescriptorsUnsupported:
            return Epitaph(status: .notSupported, reason: description)
        case .legacyMessageTooLarge, .legacyDecoderFailed:
            return nil
        }
    }

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .mux(error): return error.description
        case let .legacyRejected(byte): return FramingError.unsupportedFramingVersion(byte).description
        case let .control(error): return error.description
        case let .fileDescriptorsUnsupported(declared, _):
            return "control message declared \(declared) file descriptors; this transport cannot carry them"
        case let .legacyMessageTooLarge(limit): return "legacy message larger than \(limit) bytes"
        case let .legacyDecoderFailed(reason): return "legacy decoder failed: \(reason)"
        }
    }

    /// The bytes to write before closing: the epitaph in the framing the failure came
    /// from, or `nil` for none.
    func wireBytes(epitaphLane: PayloadProtocol) -> [UInt8]? {
        guard let epitaph else { return nil }
        switch self {
        case .mux, .legacyRejected:
            return try? epitaph.v1Frame(lane: epitaphLane).encoded()
        case let .control(error):
            return Self.jsonEpitaph(epitaph, code: error.jsonRPCCode)
        case let .fileDescriptorsUnsupported(_, requestID):
            let code = JSONRPCErrorObject.fileDescriptorErrorCode
            var bytes: [UInt8] = []
            if let requestID {
                let data = JSONValue.string(description)
                bytes = ControlMessage.response(
                    ControlResponse(id: requestID, error: .fileDescriptorError(data: data))
                ).encoded()
            }
            return bytes + Self.jsonEpitaph(epitaph, code: code)
        case .legacyMessageTooLarge, .legacyDecoderFailed:
            return nil
        }
    }

    private static func jsonEpitaph(_ epitaph: Epitaph, code: Int) -> [UInt8] {
        ControlMessage.notification(
            .epitaph(status: Int(epitaph.status.rawValue), code: code, reason: epitaph.reason)
        ).encoded()
    }
}

extension ControlError {
    /// The epitaph status a fatal control error ends a connection with: bytes that are not
    /// JSON → ``EpitaphStatus/invalidFrame``; size or depth → ``EpitaphStatus/outOfRange``;
    /// a bad `fds` value or a non-object → ``EpitaphStatus/invalidArguments``; too many
    /// fds → ``EpitaphStatus/noResources``; count mismatch or truncation →
    /// ``EpitaphStatus/badState``.
    var epitaphStatus: EpitaphStatus {
        switch self {
        case .framing, .invalidUTF8: return .invalidFrame
        case .nestingTooDeep, .messageTooLarge: return .outOfRange
        case .topLevelNotObject, .invalidFileDescriptorCount, .invalidJSONRPC: return .invalidArguments
        case .tooManyFileDescriptors: return .noResources
        case .mismatchedCount, .truncatedAtEndOfInput: return .badState
        }
    }
}
