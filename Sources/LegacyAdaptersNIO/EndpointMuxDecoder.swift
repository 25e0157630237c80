public import EndpointMux
public import NIOCore

/// The mux as a `ByteToMessageDecoder`: v1 frames, JSON-RPC control messages and
/// per-message legacy messages become ``EndpointMuxMessage``s.
///
/// Use it as `ByteToMessageHandler(EndpointMuxDecoder(mux: mux))` where a decoder is the
/// natural shape (and to check it with NIOTestUtils' `ByteToMessageDecoderVerifier`).
/// It behaves like ``EndpointMuxHandler`` except that it cannot leave the pipeline:
/// - identity probes are answered with `writeAndFlush` on the decoder's context;
/// - an Invalid Request (a well-framed JSON object that is not JSON-RPC 2.0) is answered
///   with a -32600 error response, and decoding goes on;
/// - in ``EndpointMuxLegacyMode/sticky`` mode, after ``EndpointMuxEvent/legacyTakeover``
///   every later byte is delivered as ``EndpointMuxMessage/legacy(_:)`` chunks, as they
///   arrive (prefer ``EndpointMuxHandler`` for sticky legacy);
/// - on a failure it writes the epitaph, closes the output side, fires
///   ``EndpointMuxEvent/failed(_:)``, and discards every later byte. It never throws.
///
/// A decoder instance serves one connection: it keeps the incremental control-message
/// scanner's state.
public struct EndpointMuxDecoder: ByteToMessageDecoder {
    /// Messages for the next handler.
    public typealias InboundOut = EndpointMuxMessage

    private enum State { case active, legacyPassthrough, failed }

    private var core: EndpointMuxCore
    private var state = State.active

    /// Creates the decoder for one connection.
    /// - Parameters:
    ///   - mux: the daemon's mux (identity, served lanes, legacy detector, frame limits).
    ///   - configuration: legacy mode, control messages, epitaph lane and limits.
    public init(mux: EndpointMux, configuration: EndpointMuxConfiguration = EndpointMuxConfiguration()) {
        self.core = EndpointMuxCore(mux: mux, configuration: configuration)
    }

    /// Decodes the next message at the front of `buffer`.
    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        decodeNext(context: context, buffer: &buffer, endOfInput: false)
    }

    /// Decodes what is left when the input ends or the handler is removed; a message cut
    /// short by EOF is dropped (a control message cut short is a
    /// ``ControlError/truncatedAtEndOfInput(received:)`` failure).
    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        decodeNext(context: context, buffer: &buffer, endOfInput: seenEOF)
    }

    private mutating func decodeNext(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, endOfInput: Bool
    ) -> DecodingState {
        switch state {
        case .failed:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        case .legacyPassthrough:
            guard buffer.readableBytes > 0, let chunk = buffer.readSlice(length: buffer.readableBytes) else {
                return .needMoreData
            }
            context.fireChannelRead(wrapInboundOut(.legacy(chunk)))
            return .needMoreData
        case .active:
            break
        }
        switch core.step(&buffer, endOfInput: endOfInput) {
        case .needMoreBytes:
            return .needMoreData
        case let .deliver(message):
            context.fireChannelRead(wrapInboundOut(message))
            return .continue
        case let .reply(bytes):
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
            return .continue
        case .legacyTakeover:
            state = .legacyPassthrough
            context.fireUserInboundEventTriggered(EndpointMuxEvent.legacyTakeover)
            return .continue
        case let .fail(failure):
            state = .failed
            buffer.moveReaderIndex(to: buffer.writerIndex)
            EndpointMuxClosing.closeAfterEpitaph(
                core.wireBytes(for: failure), context: context, drainTimeout: core.configuration.drainTimeout)
            context.fireUserInboundEventTriggered(EndpointMuxEvent.failed(failure))
            return .needMoreData
        }
    }
}
