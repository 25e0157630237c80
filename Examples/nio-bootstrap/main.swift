// The "Retrofitting a SwiftNIO pipeline" article's ServerBootstrap example, compiled with
// the package (a test keeps the article's copy identical to the lines between the markers).
// `nio-bootstrap-example SOCKET` serves an upper-casing line protocol that also answers
// probes and v1 frames; `--self-test` serves a temporary socket, probes it, sends a frame,
// prints OK and exits.
import EndpointMux
import LegacyAdapters
import LegacyAdaptersNIO
import NIOCore
import NIOPosix
import Glibc

let selfTest = CommandLine.arguments.contains("--self-test")
let socketPath =
    selfTest
    ? "/tmp/nio-bootstrap-example-\(getpid()).sock"
    : CommandLine.arguments.dropFirst().first ?? "/tmp/nio-bootstrap.sock"

// snippet:begin nio-handlers
/// The daemon's existing handler, now fed by the mux: its old line protocol as before
/// (`.legacy`), plus v1 frames and fd-less JSON-RPC control messages.
final class DaemonHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = EndpointMuxMessage
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var reply = context.channel.allocator.buffer(capacity: 64)
        switch unwrapInboundIn(data) {
        case let .legacy(line):  // one line, as the legacy decoder cut it
            reply.writeString(String(buffer: line).uppercased())
        case let .frame(frame) where frame.kind == .request:
            guard (try? reply.writeV1Frame(frame.response(payload: frame.payload))) != nil else { return }
        case let .control(.request(request)):
            reply.writeControlMessage(.response(ControlResponse(id: request.id, result: "ok")))
        default:
            return
        }
        context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
    }
}

/// The daemon's line framing, given to the mux as its per-message legacy decoder.
let lines = EndpointMuxLegacyDecoder(length: { bytes in
    bytes.firstIndex(of: UInt8(ascii: "\n")).map { .complete($0 + 1) } ?? .needMoreBytes
})
// snippet:end

// snippet:begin nio-bootstrap
let identity = try DaemonIdentity.current(endpoint: IPCEndpoint(namespaceID: "mydaemon", path: socketPath))
let mux = EndpointMux(identity: identity, servedProtocols: [0xF0B7], legacyDetector: .lineBased())

let server = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            // The mux goes first; the daemon's handlers follow, unchanged but for their input.
            try channel.pipeline.syncOperations.addHandlers([
                EndpointMuxHandler(mux: mux, configuration: EndpointMuxConfiguration(legacyMode: .perMessage(lines))),
                DaemonHandler(),
            ])
        }
    }
    .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true)
    .wait()
// snippet:end

if selfTest {
    let verified = try ProbeClient.probe(socketPath: socketPath, timeout: .seconds(10))
    let reply = try FrameClient(socketPath: socketPath).request(lane: 0xF0B7, payload: Array("ping".utf8))
    print(
        "nio-bootstrap-example: OK, pid \(verified.identity.pid), echo \(String(decoding: reply.payload, as: UTF8.self))"
    )
    try server.close().wait()
    exit(reply.payload == Array("ping".utf8) ? 0 : 1)
}
print("nio-bootstrap-example: serving \(socketPath)")
try server.closeFuture.wait()
