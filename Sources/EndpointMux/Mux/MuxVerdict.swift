/// What the front of a connection's buffer holds, as decided by ``EndpointMux/poll(_:)``.
///
/// The mux never consumes input: a verdict that carries `consumed` tells the caller how
/// many bytes to drop once it has acted on the verdict. Poll again right away; several
/// messages may sit in one buffer.
@_spi(Internals) public enum MuxVerdict: Hashable, Sendable {
    /// The buffer ends inside a message (or is empty); read more and poll again.
    case needMoreBytes
    /// The bytes belong to the daemon's own protocol; hand them to its decoder untouched.
    case legacy
    /// An identity probe was validated and answered: write `reply`, drop `consumed` bytes.
    case probeAnswered(reply: [UInt8], consumed: Int)
    /// A v1 frame on a served lane: `frame` points into the polled buffer; drop
    /// `consumed` bytes when done with it. Every kind passes (the reference's rule).
    case payload(FrameView, consumed: Int)
    /// A JSON-RPC control message (jsonrpc-fdpass): the caller dequeues the first
    /// `fileDescriptors` fds of its FIFO queue for it and drops `consumed` bytes.
    case control(ControlMessage, fileDescriptors: Int, consumed: Int)
    /// A well-framed JSON object that is not JSON-RPC 2.0: drop `consumed` bytes, close
    /// the first `fileDescriptors` queued fds, answer -32600 when `id` is known; the
    /// connection stays usable.
    case invalidControl(JSONRPCViolation, id: JSONRPCID?, fileDescriptors: Int, consumed: Int)
    /// A complete control message declared `needed` fds and only `queued` have arrived
    /// (they come in later `recvmsg` calls); read more. Only whitespace may arrive first.
    case needMoreFileDescriptors(needed: Int, queued: Int)
    /// The peer ended the stream at a message boundary (only with `endOfInput`).
    case endOfStream
}
