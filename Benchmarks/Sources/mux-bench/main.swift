import CPackBaseline
@_spi(Internals) import EndpointMux
import Glibc

// mux-bench: one `BENCH <name> <median ns per op> <allocations per op>` line per
// benchmark, with baselines from the same run (memcpy) for ratios.

let lane: PayloadProtocol = 0x7A63
let identity = DaemonIdentity(
    pid: 4242, executablePath: "/usr/local/bin/benchd", executableHash: [UInt8](repeating: 0xAB, count: 32),
    bootID: "7f178b59-f577-4878-9241-3a4162f48ad9",
    endpoint: IPCEndpoint(
        namespaceID: "benchd", path: "/run/user/1000/running-process/broker-v2/rp-svc-benchd-default.sock"),
    startedAtUnixMilliseconds: 1_795_286_673_302)
let mux = EndpointMux(identity: identity, servedProtocols: [lane])

func requestFrame(payloadBytes: Int, requestID: UInt64 = 42) -> [UInt8] {
    let frame = Frame(
        payloadProtocol: lane, payload: [UInt8](repeating: 0x61, count: payloadBytes), requestID: requestID)
    guard let bytes = try? frame.encoded() else { fatalError("benchmark frame does not encode") }
    return bytes
}

/// poll of one frame with the verdict fully formed (FrameView with payload range).
func benchPollSingle(_ name: String, payloadBytes: Int) {
    let bytes = requestFrame(payloadBytes: payloadBytes)
    bytes.withUnsafeBytes { raw in
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
                guard
                    case let .payload(view, consumed)? = try? mux.poll(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                else {
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
    guard let probe = try? ProbeRequest(nonce: Array(0..<32)).frame.encoded() else {
        fatalError("probe does not encode")
    }
    _ = probe.withUnsafeBytes { raw in
        Bench.run("probe.answer") {
            guard case let .probeAnswered(reply, _)? = try? mux.poll(raw) else { fatalError("probe not answered") }
            blackHole(reply.count)
        }
    }
}

// Probe answers from the template: the same probe answered by a responder straight from
// the probe's bytes (what the mux can call instead of building a ProbeRequest), and
// appended to a reused output buffer.
do {
    guard let probe = try? ProbeRequest(nonce: Array(0..<32)).frame.encoded() else {
        fatalError("probe does not encode")
    }
    let responder = ProbeResponder(identity: identity)
    _ = probe.withUnsafeBytes { raw in
        Bench.run("probe.answer.template") {
            guard let view = try? FrameView(parsingBodyIn: raw, range: 5..<raw.count),
                let reply = try? responder.answer(probe: view, in: raw)
            else { fatalError("probe not answered") }
            blackHole(reply.count)
        }
    }
    var output: [UInt8] = []
    output.reserveCapacity(4096)
    _ = probe.withUnsafeBytes { raw in
        Bench.run("probe.answer.into") {
            output.removeAll(keepingCapacity: true)
            guard let view = try? FrameView(parsingBodyIn: raw, range: 5..<raw.count),
                (try? responder.answer(probe: view, in: raw, into: &output)) != nil
            else { fatalError("probe not answered") }
            blackHole(output.count)
        }
    }
}

// Encoding: a 64 B response frame, against libprotobuf-c packing the same Frame into a
// preallocated buffer (same run), and a 64 KiB frame against a memcpy of 64 KiB.
func ratio(_ name: String, _ value: Double, _ baselineName: String, _ baseline: Double) {
    guard value > 0, baseline > 0 else { return }
    print("RATIO \(name) \(Bench.format(value / baseline))x \(baselineName)")
}

// Each group is measured interleaved with its baseline (Bench.interleaved): rounds of
// every case in turn, medians of the rounds' medians.
do {
    let request = Frame(payloadProtocol: lane, payload: [UInt8](repeating: 0x61, count: 64), requestID: 42)
    let replyPayload = [UInt8](repeating: 0x62, count: 64)
    let response = request.response(payload: replyPayload)
    let cOutput = UnsafeMutablePointer<UInt8>.allocate(capacity: 4096)
    let cPayload = UnsafeMutablePointer<UInt8>.allocate(capacity: replyPayload.count)
    cPayload.initialize(from: replyPayload, count: replyPayload.count)
    defer { cOutput.deallocate(); cPayload.deallocate() }
    let cCount = endpointmux_bench_c_pack_frame(
        cOutput, cPayload, replyPayload.count,
        response.kind.rawValue, lane.rawValue, 42, "", "")
    guard let swiftBytes = try? response.encoded(),
        Array(UnsafeBufferPointer(start: cOutput, count: cCount)) == swiftBytes
    else {
        fatalError("encoders disagree")
    }
    var output: [UInt8] = []
    output.reserveCapacity(4096)
    let results = Bench.interleaved([
        "baseline.c.pack.v1.64B", "encode.v1.64B", "encode.v1.64B.into",
        "respond.v1.64B", "respond.v1.64B.into",
    ]) { index in
        switch index {
        case 0:
            let n = endpointmux_bench_c_pack_frame(
                cOutput, cPayload, replyPayload.count,
                response.kind.rawValue, lane.rawValue, 42, "", "")
            blackHole(n)
        case 1:
            guard let bytes = try? response.encoded() else { fatalError("does not encode") }
            blackHole(bytes.count)
        case 2:
            output.removeAll(keepingCapacity: true)
            guard (try? response.encode(into: &output)) != nil else { fatalError("does not encode") }
            blackHole(output.count)
        case 3:
            guard let bytes = try? request.response(payload: replyPayload).encoded() else {
                fatalError("does not encode")
            }
            blackHole(bytes.count)
        default:
            output.removeAll(keepingCapacity: true)
            guard (try? request.response(payload: replyPayload).encode(into: &output)) != nil else {
                fatalError("does not encode")
            }
            blackHole(output.count)
        }
    }
    let cPack = results[0]
    ratio("encode.v1.64B", results[1], "baseline.c.pack.v1.64B", cPack)
    ratio("encode.v1.64B.into", results[2], "baseline.c.pack.v1.64B", cPack)
    ratio("respond.v1.64B", results[3], "baseline.c.pack.v1.64B", cPack)
    ratio("respond.v1.64B.into", results[4], "baseline.c.pack.v1.64B", cPack)
}

do {
    let size = 64 * 1024
    let payload = [UInt8](repeating: 0x63, count: size)
    // The memcpy baseline copies between two arrays, as before (array storage, not
    // 64-byte-aligned buffers: a frame's payload lands at an odd offset too).
    var targetArray = [UInt8](repeating: 0, count: size)
    let sourceArray = payload
    guard let source = sourceArray.withUnsafeBytes({ $0.baseAddress }),
        let target = targetArray.withUnsafeMutableBytes({ $0.baseAddress })
    else { fatalError("no storage") }
    let frame = Frame(kind: .response, payloadProtocol: lane, payload: payload, requestID: 42)
    var output: [UInt8] = []
    output.reserveCapacity(2 * size)
    let results = Bench.interleaved(["baseline.memcpy.64KiB", "encode.v1.64KiB", "encode.v1.64KiB.into"]) { index in
        switch index {
        case 0:
            target.copyMemory(from: source, byteCount: size)
            blackHole(target.load(fromByteOffset: size - 1, as: UInt8.self))
        case 1:
            guard let bytes = try? frame.encoded() else { fatalError("does not encode") }
            blackHole(bytes.count)
        default:
            output.removeAll(keepingCapacity: true)
            guard (try? frame.encode(into: &output)) != nil else { fatalError("does not encode") }
            blackHole(output.count)
        }
    }
    withExtendedLifetime(sourceArray) {}
    targetArray[0] = 0
    ratio("encode.v1.64KiB", results[1], "baseline.memcpy.64KiB", results[0])
    ratio("encode.v1.64KiB.into", results[2], "baseline.memcpy.64KiB", results[0])
}

// BLAKE3 of 16 MiB in memory, against `b3sum --num-threads 1` on the same bytes (a file,
// as b3sum hashes executables) in the same run.
if Bench.selected("blake3.16MiB") {
    let size = 16 * 1024 * 1024
    var state: UInt64 = 0x0123_4567_89AB_CDEF
    // A plain loop: a closure formed here (main-actor code) would check its isolation per byte.
    var data = [UInt8](repeating: 0, count: size)
    for index in 0..<size {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        data[index] = UInt8(truncatingIfNeeded: state >> 56)
    }
    let ours = data.withUnsafeBytes { raw in
        Bench.run("blake3.16MiB", minimumBatchNanoseconds: 50_000_000, batches: 9) {
            blackHole(BLAKE3.hash(raw))
        }
    }
    let oursFastest = Bench.lastFastest
    if ours > 0 {
        print("MBPS blake3.16MiB \(Bench.format(Double(size) / ours * 1000))")
        B3SumBaseline.run(data: data, ours: ours, oursFastest: oursFastest)
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

// JSON-FD: one 16 MiB control message (mostly a long string) fed in 4 KiB reads through
// a MuxSession (incremental scan + validation + parse), and a 1 KiB message per poll.
do {
    let filler = String(repeating: "abcdefghijklmnopqrstuvwxyz0123456789 ", count: 16 * 1024 * 1024 / 37 + 1)
    var text = #"{"jsonrpc":"2.0","method":"put","params":{"blob":""# + filler
    let target = 16 * 1024 * 1024 - 3
    text = String(text.utf8.prefix(target - 0))!
    text += #""}}"#
    let message = Array(text.utf8)
    precondition(message.count == 16 * 1024 * 1024, "message is \(message.count) bytes")
    let limits = MuxLimits(control: ControlLimits(maxMessageBytes: 16 * 1024 * 1024 + 1))
    let jsonMux = EndpointMux(identity: identity, servedProtocols: [lane], limits: limits)
    _ = message.withUnsafeBytes { raw in
        Bench.run("json.scan.16MiB", minimumBatchNanoseconds: 1, batches: 5) {
            var session = MuxSession(mux: jsonMux)
            var fed = 0
            var done = false
            while !done {
                fed = min(raw.count, fed + 4096)
                switch try? session.poll(UnsafeRawBufferPointer(rebasing: raw[..<fed])) {
                case .control?: done = true
                case .needMoreBytes?: precondition(fed < raw.count, "message not complete at its end")
                default: fatalError("unexpected verdict")
                }
            }
        }
    }
    var small = #"{"jsonrpc":"2.0","method":"stats","params":{"note":""#
    let suffix = #""},"id":42}"#
    small += String(repeating: "x", count: 1024 - small.utf8.count - suffix.utf8.count) + suffix
    let smallBytes = Array(small.utf8)
    precondition(smallBytes.count == 1024, "small message is \(smallBytes.count) bytes")
    _ = smallBytes.withUnsafeBytes { raw in
        Bench.run("json.poll.1KiB") {
            var session = MuxSession(mux: mux)
            guard case let .control(message, _, consumed)? = try? session.poll(raw) else { fatalError("not control") }
            blackHole(consumed)
            blackHole(message)
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
}
