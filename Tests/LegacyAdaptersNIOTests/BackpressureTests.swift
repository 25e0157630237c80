import Glibc
@_spi(Internals) import EndpointMux
import Foundation
import LegacyAdaptersNIO
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

/// Read backpressure: a peer that floods probes and never reads their answers makes the
/// handler stop calling `read()`, so the daemon's memory stays bounded.
@Suite struct BackpressureTests {
    /// Counts the pipeline's `read()` calls that reach the channel and the bytes read.
    final class ReadStats: @unchecked Sendable {
        private let lock = NSLock()
        private var reads = 0
        private var bytes = 0
        func read() { lock.withLock { reads += 1 } }
        func received(_ n: Int) { lock.withLock { bytes += n } }
        var snapshot: (reads: Int, bytes: Int) { lock.withLock { (reads, bytes) } }
    }

    /// Sits between the channel's head and the mux handler.
    final class ReadCounter: ChannelDuplexHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        typealias OutboundIn = IOData
        let stats: ReadStats
        init(stats: ReadStats) { self.stats = stats }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            stats.received(unwrapInboundIn(data).readableBytes)
            context.fireChannelRead(data)
        }
        func read(context: ChannelHandlerContext) {
            stats.read()
            context.read()
        }
    }

    @Test func embeddedHandlerHoldsReadsWhileAnswersBackUp() throws {
        // EmbeddedChannel completes writes on flush; a handler in front that delays
        // completion stands in for a peer that does not read.
        final class Stall: ChannelOutboundHandler {
            typealias OutboundIn = IOData
            var held: [EventLoopPromise<Void>] = []
            func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
                let mine = context.eventLoop.makePromise(of: Void.self)
                held.append(mine)
                context.write(data, promise: nil)
                if let promise { mine.futureResult.cascade(to: promise) }
            }
            func release() { let all = held; held = []; for p in all { p.succeed(()) } }
        }
        final class Reads: ChannelOutboundHandler {
            typealias OutboundIn = IOData
            var count = 0
            func read(context: ChannelHandlerContext) { count += 1; context.read() }
        }
        let stall = Stall()
        let reads = Reads()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            stall, reads,
            EndpointMuxHandler(
                mux: Fixtures.mux(), configuration: EndpointMuxConfiguration(maxQueuedOutputByteCount: 1000)),
        ])
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/peer")).wait()
        let probe = try Fixtures.probe()
        let answer = try ProbeResponder(identity: Fixtures.identity).answer(probe)
        let probes = Array(repeating: try probe.frame.encoded(), count: 100).flatMap { $0 }
        try channel.writeInbound(Fixtures.buffer(probes))
        // The engine stops deciding once more than 1000 bytes wait: only a few answers.
        let first = try channel.writtenBytes()
        #expect(first.count < 1000 + 2 * answer.count)
        #expect(first.count >= answer.count)
        // A read is held while the answers wait.
        let before = reads.count
        channel.pipeline.read()
        #expect(reads.count == before)
        // The peer catches up: answering resumes and the held read goes out.
        var total = first.count
        for _ in 0..<200 where total < 100 * answer.count {
            stall.release()
            total += try channel.writtenBytes().count
        }
        #expect(total == 100 * answer.count)
        stall.release()  // the last answers' writes complete: nothing waits any more
        #expect(reads.count == before + 1)
        _ = try channel.finish()
    }

    @Test func probeFloodOnASocketStopsTheReads() async throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let client = fds[1]
        defer { close(client) }
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        let stats = ReadStats()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let mux = Fixtures.mux()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ReadCounter(stats: stats),
                        EndpointMuxHandler(
                            mux: mux, configuration: EndpointMuxConfiguration(maxQueuedOutputByteCount: 64 * 1024)),
                    ])
                }
            }
            .withConnectedSocket(fds[0]).get()

        let probe = try Fixtures.probe()
        let answerCount = try ProbeResponder(identity: Fixtures.identity).answer(probe).count
        let batch = Array(repeating: try probe.frame.encoded(), count: 256).flatMap { $0 }
        let probeCount = try probe.frame.encoded().count
        // Flood, never reading, until the server stops taking bytes for a while.
        var sent = 0
        var stalledSince: ContinuousClock.Instant?
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(20) {
            let n = batch.withUnsafeBytes {
                send(client, $0.baseAddress, $0.count - ($0.count % probeCount), Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                sent += n
                stalledSince = nil
            } else {
                if stalledSince == nil { stalledSince = .now }
                if let since = stalledSince, ContinuousClock.now - since > .milliseconds(300) { break }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        #expect(stalledSince != nil, "the server kept reading \(sent) bytes")
        // Stalled: no read is issued for a while, and what was read is bounded.
        let frozen = stats.snapshot
        try await Task.sleep(for: .milliseconds(300))
        #expect(stats.snapshot.reads == frozen.reads)
        #expect(frozen.bytes < 8 * 1024 * 1024)

        // Now read everything: the server resumes, and every whole probe is answered.
        let probesSent = sent / probeCount
        let remainder = sent % probeCount
        if remainder > 0 {  // complete the last probe
            let tail = Array(try probe.frame.encoded().suffix(probeCount - remainder))
            var offset = 0
            while offset < tail.count {
                let n = tail[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n > 0 { offset += n } else { try await Task.sleep(for: .milliseconds(1)) }
            }
        }
        let expected = (probesSent + (remainder > 0 ? 1 : 0)) * answerCount
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        let readStart = ContinuousClock.now
        while received < expected, ContinuousClock.now - readStart < .seconds(30) {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n > 0 { received += n } else { try await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(received == expected)
        #expect(stats.snapshot.reads > frozen.reads)
        try await channel.close()
        try await group.shutdownGracefully()
    }
}
