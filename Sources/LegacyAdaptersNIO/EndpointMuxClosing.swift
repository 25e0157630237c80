import NIOCore

/// Ends a connection the way the POSIX adapter does: epitaph, shut down the output side
/// (the peer reads the epitaph, then EOF), then close fully when the peer closes or
/// after the drain timeout.
enum EndpointMuxClosing {
    static func closeAfterEpitaph(_ bytes: [UInt8]?, context: ChannelHandlerContext, drainTimeout: TimeAmount) {
        if let bytes, !bytes.isEmpty {
            context.write(NIOAny(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
        }
        context.flush()
        let channel = context.channel
        let closed = context.eventLoop.makePromise(of: Void.self)
        // Sockets finish the pending writes before they shut the output down; channels
        // without half-closure fail this and are closed fully (after the writes).
        context.close(mode: .output, promise: closed)
        closed.futureResult.whenComplete { result in
            switch result {
            case .success:
                channel.eventLoop.scheduleTask(in: drainTimeout) { channel.close(promise: nil) }
            case .failure:
                channel.close(promise: nil)
            }
        }
    }
}
