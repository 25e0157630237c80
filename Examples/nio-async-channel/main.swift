// The "Retrofitting a SwiftNIO pipeline" article's NIOAsyncChannel example, compiled with
// the package (a test keeps the article's copy identical to the lines between the markers).
// `nio-async-channel-example SOCKET` serves an echo daemon in structured concurrency;
// `--self-test` serves a temporary socket, probes it, sends a frame, prints OK and exits.
import EndpointMux
import LegacyAdapters
import LegacyAdaptersNIO
import NIOCore
import NIOPosix
import Glibc

let selfTest = CommandLine.arguments.contains("--self-test")
let socketPath =
    selfTest
    ? "/tmp/nio-async-channel-example-\(getpid()).sock"
    : CommandLine.arguments.dropFirst().first ?? "/tmp/nio-async-channel.sock"

// snippet:begin nio-async-channel
let identity = try DaemonIdentity.current(endpoint: IPCEndpoint(namespaceID: "mydaemon", path: socketPath))
let mux = EndpointMux(identity: identity, servedProtocols: [0xF0B7])

// Each accepted channel: the mux handler first, then an async channel of its messages.
let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
    .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true) { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(EndpointMuxHandler(mux: mux))
            return try NIOAsyncChannel<EndpointMuxMessage, ByteBuffer>(wrappingChannelSynchronously: channel)
        }
    }

/// One connection: frames and control messages in, replies out; probes never show up here.
func serve(_ connection: NIOAsyncChannel<EndpointMuxMessage, ByteBuffer>) async throws {
    try await connection.executeThenClose { inbound, outbound in
        for try await message in inbound {
            var reply = ByteBuffer()
            switch message {
            case let .frame(frame) where frame.kind == .request:
                try reply.writeV1Frame(frame.response(payload: frame.payload))
            case let .control(.request(request)):
                reply.writeControlMessage(.response(ControlResponse(id: request.id, result: "ok")))
            default:
                continue
            }
            try await outbound.write(reply)
        }
    }
}
// snippet:end

// snippet:begin nio-async-accept
func run() async throws {
    try await withThrowingDiscardingTaskGroup { group in
        try await server.executeThenClose { connections in
            for try await connection in connections {
                group.addTask { try? await serve(connection) }
            }
        }
    }
}
// snippet:end

if selfTest {
    let serving = Task { try await run() }
    let check = Task.detached { () throws -> [UInt8] in
        let verified = try ProbeClient.probe(socketPath: socketPath, timeout: .seconds(10))
        let reply = try FrameClient(socketPath: socketPath).request(lane: 0xF0B7, payload: Array("ping".utf8))
        print("nio-async-channel-example: OK, pid \(verified.identity.pid)")
        return reply.payload
    }
    let payload = try await check.value
    serving.cancel()
    unlink(socketPath)
    exit(payload == Array("ping".utf8) ? 0 : 1)
}
print("nio-async-channel-example: serving \(socketPath)")
try await run()
