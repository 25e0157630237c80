@_spi(Internals) public import EndpointMux
public import NIOCore

/// The mux as a `ByteToMessageDecoder`: v1 frames, JSON-RPC control messages and
/// per-message legacy messages become ``EndpointMuxMessage``s.
///
/// Use it as `ByteToMessageHandler(EndpointMuxDecoder(mux: mux))` where a decoder is the
/// natural shape (and to check it with NIOTestUtils' `ByteToMessageDecoderVerifier`).
/// It runs the same connection engine as ``EndpointMuxHandler`` (and the POSIX
/// `ConnectionDriver`), with these differences of shape:
/// - it cannot leave the pipeline: in ``EndpointMuxLegacyMode/sticky`` mode, after
///   ``EndpointMuxEvent/legacyTakeover`` every byte (the buffered ones first) is delivered
///   as ``EndpointMuxMessage/legacy(_:)`` chunks, as they arrive (prefer
///   ``EndpointMuxHandler`` for sticky legacy);
/// - it cannot hold the channel's reads, and the next handlers' writes do not pass
///   through it: only the engine's own answers count against the output cap (prefer
///   ``EndpointMuxHandler`` on untrusted sockets);
/// - it never throws: failures end the connection as the engine decides.
///
/// A decoder instance serves one connection.
public struct EndpointMuxDecoder: ByteToMessageDecoder {
    /// Messages for the next handler.
    public typealias InboundOut = EndpointMuxMessage

    private let engine: EndpointMuxEngine

    /// Creates the decoder for one connection.
    /// - Parameters:
    ///   - mux: the daemon's mux (identity, served lanes, legacy detector, frame and
    ///     control limits, whether control messages are accepted).
    ///   - configuration: legacy mode, timeouts, epitaph lane and output cap.
    public init(mux: EndpointMux, configuration: EndpointMuxConfiguration = EndpointMuxConfiguration()) {
        self.engine = EndpointMuxEngine(mux: mux, configuration: configuration, host: .decoder)
    }

    /// Starts the connection's timers.
    public mutating func decoderAdded(context: ChannelHandlerContext) {
        engine.added(context: context)
    }

    /// Stops the connection's timers.
    public mutating func decoderRemoved(context: ChannelHandlerContext) {
        engine.removed()
    }

    /// Hands every readable byte to the engine and carries out what it decides.
    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        engine.decode(&buffer, context: context, endOfInput: false)
        return .needMoreData
    }

    /// As ``decode(context:buffer:)``, then, when the input ended, lets the engine finish
    /// the connection (a message cut short gets its epitaph; a JSON message an
    /// `rpc.epitaph`).
    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        engine.decode(&buffer, context: context, endOfInput: seenEOF)
        return .needMoreData
    }
}
