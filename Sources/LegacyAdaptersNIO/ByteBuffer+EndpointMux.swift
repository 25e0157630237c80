@_spi(Internals) public import EndpointMux
public import NIOCore

extension ByteBuffer {
    /// Appends `frame`, header and body, as the v1 wire carries it (the bytes
    /// running-process writes). Use it to encode a reply to an
    /// `EndpointMuxMessage.frame(_:)`, e.g. `frame.response(payload: …)`.
    /// - Parameter maxBodyByteCount: the body cap (the mux's
    ///   `MuxLimits.maxFrameBodyByteCount` is the natural choice; default 16 MiB).
    /// - Returns: the number of bytes written.
    /// - Throws: `EndpointMuxError` with code `limitExceeded` when the body exceeds the
    ///   cap; nothing is written then.
    @discardableResult
    public mutating func writeV1Frame(
        _ frame: Frame, maxBodyByteCount: Int = MuxLimits().maxFrameBodyByteCount
    ) throws(EndpointMuxError) -> Int {
        do throws(FramingError) {
            return writeBytes(try frame.encoded(maxBodyByteCount: maxBodyByteCount))
        } catch {
            throw .framing(error)
        }
    }

    /// Appends `message` as compact JSON-RPC (jsonrpc-fdpass framing: no delimiter, no
    /// `fds` member, since SwiftNIO cannot send file descriptors). Use it to encode a
    /// reply to an `EndpointMuxMessage.control(_:)`.
    /// - Returns: the number of bytes written.
    @discardableResult
    public mutating func writeControlMessage(_ message: ControlMessage) -> Int {
        writeBytes(message.encoded())
    }
}
