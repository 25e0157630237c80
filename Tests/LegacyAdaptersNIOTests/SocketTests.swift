import Glibc
@_spi(Internals) import EndpointMux
import LegacyAdaptersNIO
import NIOCore
import NIOPosix
import Testing

/// A real server: NIOPosix `ServerBootstrap` on a Unix socket in /tmp, the mux handler
/// first, a frame-echo handler after it; a plain blocking POSIX client.
@Suite struct SocketTests {
    struct SocketError: Error, CustomStringConvertible {
        var operation: String
        var code: Int32
        var description: String { "\(operation): errno \(code)" }
    }

    /// A blocking client connection with a 10 s receive timeout.
    final class Client {
        let fd: Int32

        init(path: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw SocketError(operation: "socket", code: errno) }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let pathBytes = Array(path.utf8)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in pathBytes.prefix(raw.count - 1).enumerated() { raw[i] = byte }
            }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard result == 0 else {
                let code = errno
                close(fd)
                throw SocketError(operation: "connect", code: code)
            }
        }

        deinit { close(fd) }

        func send(_ bytes: [UInt8]) throws {
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes {
                    Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                }
                if n < 0 { if errno == EINTR { continue }; throw SocketError(operation: "send", code: errno) }
                offset += n
            }
        }

        /// Exactly `count` bytes, or fewer if EOF comes first.
        func receive(_ count: Int) throws -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: count)
            var filled = 0
            while filled < count {
                let n = bytes[filled...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 { if errno == EINTR { continue }; throw SocketError(operation: "recv", code: errno) }
                if n == 0 { break }
                filled += n
            }
            return Array(bytes[..<filled])
        }

        /// One whole v1 frame (header and body).
        func receiveFrame() throws -> [UInt8] {
            let header = try receive(5)
            guard header.count == 5 else { throw SocketError(operation: "short header", code: 0) }
            let length = Int(header[1]) | Int(header[2]) << 8 | Int(header[3]) << 16 | Int(header[4]) << 24
            return header + (try receive(length))
        }
    }

    @Test func probeFrameEchoAndEpitaphThenEOF() async throws {
        let path = "/tmp/emux-nio-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        unlink(path)
        defer { unlink(path) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let mux = Fixtures.mux()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([EndpointMuxHandler(mux: mux), FrameEcho()])
                }
            }
            .bind(unixDomainSocketPath: path).get()

        do {
            let client = try Client(path: path)
            // 1. Probe: answered byte for byte.
            let probe = try Fixtures.probe()
            try client.send(try probe.frame.encoded())
            let answer = try client.receiveFrame()
            #expect(answer == (try ProbeResponder(identity: Fixtures.identity).answer(probe)))

            // 2. A frame, sent in two pieces: echoed by the next handler.
            let frame = Fixtures.frame(payload: Array(repeating: 0x42, count: 70_000), requestID: 31)
            let bytes = try frame.encoded()
            try client.send(Array(bytes[..<1000]))
            try client.send(Array(bytes[1000...]))
            let echoed = try Frame(parsingFrame: try client.receiveFrame())
            #expect(echoed == frame.response(payload: frame.payload))

            // 3. A control request: answered by the next handler.
            try client.send(ControlMessage.request(ControlRequest(method: "status", id: 5)).encoded())
            let reply = try client.receive(
                ControlMessage.response(ControlResponse(id: 5, result: "status")).encoded().count)
            #expect(reply == ControlMessage.response(ControlResponse(id: 5, result: "status")).encoded())

            // 4. An unserved lane: the epitaph, then EOF. This connection has carried
            // control messages, so the engine frames it as an rpc.epitaph (as POSIX does).
            try client.send(try Fixtures.frame(0x7C4C).encoded())
            var rest: [UInt8] = []
            while true {
                let chunk = try client.receive(1)
                if chunk.isEmpty { break }
                rest += chunk
            }
            let expected = MuxError.unservedPayloadProtocol(payloadProtocol: 0x7C4C).epitaph
            guard case let .notification(epitaph)? = try Fixtures.controlMessages(in: rest).last,
                epitaph.method == "rpc.epitaph", case let .object(params)? = epitaph.params
            else { Issue.record("no rpc.epitaph: \(rest)"); return }
            #expect(params["status"] == .number(JSONNumber(Int(expected.status.rawValue))))
        } catch {
            Issue.record("client failed: \(error)")
        }

        // A second connection: a request with fds gets -32050, rpc.epitaph, then EOF.
        do {
            let client = try Client(path: path)
            try client.send(Array(#"{"jsonrpc":"2.0","method":"open","id":"a","fds":1}"#.utf8))
            var received: [UInt8] = []
            while true {
                let chunk = try client.receive(1)
                if chunk.isEmpty { break }
                received += chunk
            }
            let messages = try Fixtures.controlMessages(in: received)
            #expect(messages.count == 2)
            #expect(messages.first?.id == "a")
            #expect(messages.last?.method == "rpc.epitaph")
        } catch {
            Issue.record("client failed: \(error)")
        }

        try await server.close()
        try await group.shutdownGracefully()
    }
}
