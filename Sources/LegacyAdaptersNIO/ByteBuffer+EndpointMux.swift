@_spi(Internals) package import EndpointMux
package import NIOCore

extension ByteBuffer {
    /// Appends `frame`, header and body, as the v1 wire carries it (the bytes
    /// running-process writes). Use it to encode a reply to an
    /// ``EndpointMuxMessage/frame(_:)``, e.g. `frame.response(payload: …)`.
    /// - Parameter maxBodyByteCount: the body cap (the mux's
    ///   ``MuxLimits/maxFrameBodyByteCount`` is the natural choice).
    /// - Returns: the number of bytes written.
    /// - Throws: ``FramingError/frameTooLarge(length:limit:)``; nothing is written then.
    @discardableResult
    package mutating func writeV1Frame(
        _ frame: Frame, maxBodyByteCount: Int = V1Framing.defaultMaxBodyByteCount
    ) throws(FramingError) -> Int {
        writeBytes(try frame.encoded(maxBodyByteCount: maxBodyByteCount))
    }

    /// Appends `message` as compact JSON-RPC (jsonrpc-fdpass framing: no delimiter, no
    /// `fds` member, since SwiftNIO cannot send file descriptors). Use it to encode a
    /// reply to an ``EndpointMuxMessage/control(_:)``.
    /// - Returns: the number of bytes written.
    @discardableResult
    package mutating func writeControlMessage(_ message: ControlMessage) -> Int {
        writeBytes(message.encoded())
    }
}
