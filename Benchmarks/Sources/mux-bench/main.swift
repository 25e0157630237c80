import EndpointMux
#if canImport(Glibc)
import Glibc
#endif

// mux-bench: one `BENCH <name> <median ns per op> <allocations per op>` line per
// benchmark, with baselines from the same run (memcpy) for ratios.

let lane: PayloadProtocol = 0x7A63
let identity = DaemonIdentity(
    pid: 4242, executablePath: "/usr/local/bin/benchd", executableHash: [UInt8](repeating: 0xAB, count: 32),
    bootID: "7f178b59-f577-4878-9241-3a4162f48ad9",
    endpoint: IPCEndpoint(namespaceID: "benchd", path: "/run/user/1000/running-process/broker-v2/rp-svc-benchd-default.sock"),
    startedAtUnixMilliseconds: 1_795_286_673_302)
let mux = EndpointMux(identity: identity, servedProtocols: [lane])

func requestFrame(payloadBytes: Int, requestID: UInt64 = 42) -> [UInt8] {
    let frame = Frame(payloadProtocol: lane, payload: [UInt8](repeating: 0x61, count: payloadBytes), requestID: requestID)
    guard let bytes = try? frame.encoded() else { fatalError("benchmark frame does not encode") }
    return bytes
}

/// poll of one frame with the verdict fully formed (FrameView with payload range).
func benchPollSingle(_ name: String, payloadBytes: Int) {
    let bytes = requestFrame(payloadBytes: payloadBytes)
    _ = bytes.withUnsafeBytes { raw in
        _ = Bench.run(name) {
            guard case let .payload(view, consumed)? = try? mux.poll(raw) else { fatalError("not a payload verdict") }
            blackHole(view.payloadRange.count &+ consumed)
        }
    }
}

// Baselines.
do {
    let source = [UInt8](repeating: 0x5A, count: 64)
    var target = [UInt8](repeating: 0, count: 64)
    _ = source.withUnsafeBytes { src in
        target.withUnsafeMutableBytes { dst in
            Bench.run("baseline.memcpy.64B") {
                dst.copyMemory(from: src)
                blackHole(dst[0])
            }
        }
    }
}

benchPollSingle("poll.v1.64B", payloadBytes: 64)
benchPollSingle("poll.v1.64KiB", payloadBytes: 64 * 1024)

do {
    var stream: [UInt8] = []
    for i in 0..<1000 { stream += requestFrame(payloadBytes: 64, requestID: UInt64(i + 1)) }
    _ = stream.withUnsafeBytes { raw in
        Bench.run("poll.v1.stream1000", operationsPerCall: 1000) {
            var offset = 0
            var frames = 0
            while offset < raw.count {
                guard case let .payload(view, consumed)? = try? mux.poll(UnsafeRawBufferPointer(rebasing: raw[offset...])) else {
                    fatalError("stream frame is not a payload verdict")
                }
                blackHole(view.requestID)
                offset += consumed
                frames += 1
            }
            precondition(frames == 1000)
        }
    }
}

do {
    guard let probe = try? ProbeRequest(nonce: Array(0..<32)).frame.encoded() else { fatalError("probe does not encode") }
    _ = probe.withUnsafeBytes { raw in
        Bench.run("probe.answer") {
            guard case let .probeAnswered(reply, _)? = try? mux.poll(raw) else { fatalError("probe not answered") }
            blackHole(reply.count)
        }
    }
}

do {
    let size = 16 * 1024 * 1024
    let source = [UInt8](repeating: 0x5A, count: size)
    var target = [UInt8](repeating: 0, count: size)
    _ = source.withUnsafeBytes { src in
        target.withUnsafeMutableBytes { dst in
            Bench.run("memcpy.16MiB", minimumBatchNanoseconds: 50_000_000, batches: 9) {
                dst.copyMemory(from: src)
                blackHole(dst[size - 1])
            }
        }
    }
}

do {
    let bytes = requestFrame(payloadBytes: 64)
    _ = bytes.withUnsafeBytes { raw in
        Bench.run("diag.frameview.64B") {
            guard let view = try? FrameView(parsingBodyIn: raw, range: 5..<raw.count) else { fatalError() }
            blackHole(view.payloadRange.count)
        }
    }
    _ = bytes.withUnsafeBytes { raw in
        Bench.run("diag.header.64B") {
            guard let h = try? V1Framing.readHeader(raw) else { fatalError() }
            blackHole(h)
        }
    }
}
