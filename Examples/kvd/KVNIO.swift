import EndpointMux
import LegacyAdaptersNIO
import NIOCore
import NIOPosix
import Glibc

/// kvd on SwiftNIO. Before EndpointMux the pipeline was `[LineDecoder, KVLegacyHandler]`;
/// the retrofit puts `EndpointMuxHandler` first (per-message legacy mode with the same line
/// framing) and lets `KVMuxHandler` answer frames and control messages too.
enum KVNIO {
    /// How long the listener rests after `accept` fails (`EMFILE`, `ENFILE`, …).
    static let acceptBackoff = TimeAmount.milliseconds(100)

    static func start(
        socket: String, store: KVStore, mux: EndpointMux?,
        idleTimeout: Duration?, partialMessageTimeout: Duration?
    ) throws -> () -> Void {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // One event loop: the store is only touched on it.
        let shared = UncheckedStore(store)
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // Out of fds, `accept` fails at once on every wake-up. NIO's backoff handler
            // (which the synchronous `bind` does not add by itself) delays the next read;
            // `AcceptPause` also takes the listener out of the selector for that long,
            // which the backoff alone does not when the failing accept was the first of
            // its read.
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        AcceptPause(),
                        AcceptBackoffHandler(
                            shouldForwardIOErrorCaught: false, backoffProvider: { _ in acceptBackoff }),
                    ])
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let mux {
                        let configuration = EndpointMuxConfiguration(
                            legacyMode: .perMessage(
                                EndpointMuxLegacyDecoder { buffer in try LineDecoder.nextLine(&buffer) }),
                            idleTimeout: idleTimeout.map(timeAmount),
                            partialMessageTimeout: partialMessageTimeout.map(timeAmount))
                        try channel.pipeline.syncOperations.addHandlers([
                            EndpointMuxHandler(mux: mux, configuration: configuration), KVMuxHandler(store: shared),
                        ])
                    } else {
                        try channel.pipeline.syncOperations.addHandlers([
                            ByteToMessageHandler(LineDecoder()), KVLegacyHandler(store: shared),
                        ])
                    }
                }
            }
            .bind(unixDomainSocketPath: socket, cleanupExistingSocketFile: true)
            .wait()
        return {
            try? channel.close().wait()
            try? group.syncShutdownGracefully()
        }
    }
}

/// Pauses the listener's `autoRead` for ``KVNIO/acceptBackoff`` when `accept` fails for
/// want of fds (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`).
///
/// Why `AcceptBackoffHandler` is not enough on its own (swift-nio 2.101): when the first
/// `accept` of a read fails, the channel's read stays pending, so NIO neither calls
/// `read()` again (which the backoff handler would delay) nor leaves the selector: the
/// listener stays readable and every wake-up fails again at once (a busy loop).
/// Turning `autoRead` off unregisters it; turning it back on registers it again.
final class AcceptPause: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Channel
    typealias InboundOut = Channel
    private var paused = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode), !paused,
            let options = context.channel.syncOptions,
            (try? options.setOption(ChannelOptions.autoRead, value: false)) != nil
        {
            paused = true
            let channel = context.channel
            context.eventLoop.assumeIsolated().scheduleTask(in: KVNIO.acceptBackoff) {
                self.paused = false
                try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
            }
        }
        context.fireErrorCaught(error)
    }
}

/// A `Duration` as NIO's `TimeAmount`.
func timeAmount(_ duration: Duration) -> TimeAmount {
    let (seconds, attoseconds) = duration.components
    return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
}

/// The store, confined to the single event loop.
final class UncheckedStore: @unchecked Sendable {
    let store: KVStore
    init(_ store: KVStore) { self.store = store }
}

/// kvd's line framing as a NIO decoder (one `\n`-terminated line, at most 64 KiB).
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    struct LineTooLong: Error {}

    static func nextLine(_ buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > KVLineProtocol.maxLineBytes { throw LineTooLong() }
            return nil
        }
        return buffer.readSlice(length: newline - buffer.readerIndex + 1)
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let line = try Self.nextLine(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(line))
        return .continue
    }
}

/// The original NIO handler: a line in, the reply line out.
final class KVLegacyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let store: UncheckedStore
    init(store: UncheckedStore) { self.store = store }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        let reply = store.store.execute(String(buffer: line).replacingNewline())
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: reply + "\n")), promise: nil)
    }
}

/// The retrofit's handler: legacy lines as before, plus frames on lane 0xF0B7.
final class KVMuxHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = EndpointMuxMessage
    typealias OutboundOut = ByteBuffer
    let store: UncheckedStore
    init(store: UncheckedStore) { self.store = store }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .legacy(line):
            let reply = store.store.execute(String(buffer: line).replacingNewline())
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: reply + "\n")), promise: nil)
        case let .frame(frame) where frame.kind == .request:
            let reply = store.store.execute(String(decoding: frame.payload, as: UTF8.self))
            var buffer = context.channel.allocator.buffer(capacity: reply.utf8.count + 32)
            if (try? buffer.writeV1Frame(frame.response(payload: Array(reply.utf8)))) != nil {
                context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            }
        case .frame:
            break
        case let .control(message):
            // Over NIO no fds can arrive (messages that declare some get an epitaph), so
            // dumpTo/loadFrom cannot be served here.
            guard case let .request(request) = message else { return }
            var buffer = context.channel.allocator.buffer(capacity: 128)
            let error = JSONRPCErrorObject(
                code: JSONRPCErrorObject.invalidParamsCode,
                message: "\(request.method) needs an fd; use the posix adapter")
            buffer.writeControlMessage(.response(ControlResponse(id: request.id, error: error)))
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
    }
}

extension String {
    /// The line without its `\n`.
    func replacingNewline() -> String { hasSuffix("\n") ? String(dropLast()) : self }
}
