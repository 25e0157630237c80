import Testing
@_spi(Internals) @testable import EndpointMux

/// The connection engine's policy, with synthetic instants only (no sockets, no sleeps).
@Suite struct ConnectionStateMachineTests {
    static let lane: PayloadProtocol = 0x7A63
    static let t0 = ContinuousClock.now

    /// What came out of the machine, flattened for comparison.
    enum Output: Equatable, CustomStringConvertible {
        case payload([UInt8])
        case legacy([UInt8])
        case takeover([UInt8])
        case control(String, fds: Int)
        case closed(ConnectionStateMachine.End)
        case write([UInt8], fds: Int)
        case closeFDs(Int)
        case shutdown

        var description: String {
            switch self {
            case let .payload(p): "payload(\(String(decoding: p, as: UTF8.self)))"
            case let .legacy(b): "legacy(\(String(decoding: b, as: UTF8.self)))"
            case let .takeover(b): "takeover(\(b.count) bytes)"
            case let .control(m, fds): "control(\(m), fds: \(fds))"
            case let .closed(end): "closed(\(end))"
            case let .write(b, fds): "write(\(String(decoding: b, as: UTF8.self).debugDescription), fds: \(fds))"
            case let .closeFDs(n): "closeFDs(\(n))"
            case .shutdown: "shutdown"
            }
        }

        var isWrite: Bool { if case .write = self { true } else { false } }
    }

    /// A machine plus an adapter that writes everything at once unless told otherwise.
    struct Harness {
        var machine: ConnectionStateMachine
        var outputs: [Output] = []
        var unwritten = 0
        /// Instants advance by 1 ms per turn unless set.
        var now: ContinuousClock.Instant

        init(mux: EndpointMux = ConnectionStateMachineTests.mux(), options: ConnectionOptions = ConnectionOptions()) {
            now = ConnectionStateMachineTests.t0
            machine = ConnectionStateMachine(mux: mux, options: options, now: now)
        }

        mutating func turn(_ step: Duration = .milliseconds(1)) { now += step }

        mutating func drain() {
            while let action = machine.nextAction() {
                switch action {
                case let .deliver(event):
                    switch event {
                    case let .payload(frame): outputs.append(.payload(frame.payload))
                    case let .legacyMessage(bytes): outputs.append(.legacy(bytes))
                    case let .legacyTakeover(bytes): outputs.append(.takeover(bytes))
                    case let .control(message, count):
                        outputs.append(.control(String(decoding: message.encoded(), as: UTF8.self), fds: count))
                    case let .closed(end): outputs.append(.closed(end))
                    }
                case let .write(bytes, count):
                    unwritten += max(1, bytes.count)
                    outputs.append(.write(bytes, fds: count))
                case let .closeReceivedFileDescriptors(n): outputs.append(.closeFDs(n))
                case .shutdownOutput: outputs.append(.shutdown)
                }
            }
        }

        /// One adapter call: flush, then receive `bytes` (and optionally EOF).
        mutating func receive(_ bytes: [UInt8], fds: Int = 0, endOfInput: Bool = false, flush: Bool = true) {
            turn()
            if flush { written() }
            if !bytes.isEmpty {
                bytes.withUnsafeBytes { machine.receive(copying: $0, fileDescriptorCount: fds, now: now) }
                drain()
            }
            if endOfInput {
                machine.receiveEndOfInput(now: now)
                drain()
            }
            if flush { written() }
        }

        mutating func receive(_ text: String, endOfInput: Bool = false) {
            receive(Array(text.utf8), endOfInput: endOfInput)
        }

        /// The adapter wrote everything queued.
        mutating func written() {
            guard unwritten > 0 else { return }
            unwritten = 0
            machine.outputWritten(remaining: 0, now: now)
            drain()
        }

        /// The next call after the daemon answered (flushes, runs timers due).
        mutating func nextCall(after step: Duration = .milliseconds(1)) {
            turn(step)
            written()
            machine.tick(now: now)
            drain()
            written()
        }

        mutating func sendLine(_ text: String) {
            _ = machine.send(bytes: Array(text.utf8))
            drain()
        }

        var writes: [[UInt8]] { outputs.compactMap { if case let .write(b, _) = $0 { b } else { nil } } }
        var closedEnd: ConnectionStateMachine.End? {
            outputs.lazy.compactMap { if case let .closed(end) = $0 { end } else { nil } }.first
        }
    }

    static func mux(detector: LegacyDetector = .never, control: Bool = true) -> EndpointMux {
        EndpointMux(
            identity: Vectors.captureIdentity, servedProtocols: [lane], legacyDetector: detector,
            acceptsControlMessages: control)
    }

    static let lines = ConnectionOptions(
        legacyMode: .perMessage { bytes in
            bytes.firstIndex(of: UInt8(ascii: "\n")).map { .complete($0 + 1) } ?? .needMoreBytes
        })

    static func frame(_ payload: String, lane: PayloadProtocol = lane, id: UInt64 = 1) throws -> [UInt8] {
        try Frame(payloadProtocol: lane, payload: Array(payload.utf8), requestID: id).encoded()
    }

    static func epitaph(in bytes: [UInt8]) throws -> Epitaph? {
        Epitaph(v1Frame: try Frame(parsingFrame: bytes))
    }

    // MARK: - Ends are deferred behind the daemon's answers

    @Test func halfCloseAfterALineAnswersThenCloses() {
        var h = Harness(mux: Self.mux(detector: .lineBased()), options: Self.lines)
        h.receive("GET x\n", endOfInput: true)
        #expect(h.outputs == [.legacy(Array("GET x\n".utf8))])
        #expect(h.machine.interest.deadline == h.now, "a deferred end asks to be called at once")
        h.sendLine("NOT_FOUND\n")
        h.nextCall()
        #expect(
            h.outputs == [
                .legacy(Array("GET x\n".utf8)), .write(Array("NOT_FOUND\n".utf8), fds: 0),
                .shutdown, .closed(.peerClosed),
            ])
        #expect(h.machine.isClosed)
    }

    @Test func aGoodLineThenAFatalOneInOneReadAnswersTheLineThenClosesSilently() {
        var h = Harness(mux: Self.mux(detector: .lineBased()), options: Self.lines)
        // "{x}\n" is not a line the detector claims, and not JSON: a legacy client gets no epitaph.
        h.receive("GET a\n{x}\n")
        #expect(h.outputs == [.legacy(Array("GET a\n".utf8))])
        h.sendLine("V\n")
        h.nextCall()
        #expect(h.writes == [Array("V\n".utf8)])
        #expect(h.outputs.contains(.shutdown))
        h.receive([], endOfInput: true)
        #expect(h.closedEnd == .failed(nil))
    }

    @Test func aFrameThenABadFrameGetsTheAnswerBeforeTheEpitaph() throws {
        var h = Harness()
        h.receive(try Self.frame("one") + [0x01, 0x02, 0x00, 0x00, 0x00, 0xFF, 0xFF])
        #expect(h.outputs == [.payload(Array("one".utf8))])
        _ = try h.machine.send(
            Frame(kind: .response, payloadProtocol: Self.lane, payload: Array("ONE".utf8), requestID: 1))
        h.drain()
        h.nextCall()
        #expect(h.writes.count == 2)
        #expect(try Frame(parsingFrame: h.writes[0]).payload == Array("ONE".utf8))
        #expect(try Self.epitaph(in: h.writes[1])?.status == .invalidFrame)
        #expect(h.outputs.last == .shutdown, "draining until the peer's EOF")
        h.receive([], endOfInput: true)
        if case .failed(let epitaph?)? = h.closedEnd {
            #expect(epitaph.status == .invalidFrame)
        } else {
            Issue.record("not failed with an epitaph: \(h.outputs)")
        }
    }

    @Test func aDrainThatNeverSeesEOFClosesAtItsDeadline() throws {
        var h = Harness(options: ConnectionOptions(drainTimeout: .milliseconds(200)))
        h.receive([0x01, 0x02, 0x00, 0x00, 0x00, 0xFF, 0xFF])
        #expect(h.outputs.contains(.shutdown))
        #expect(h.closedEnd == nil)
        h.nextCall(after: .milliseconds(100))
        #expect(h.closedEnd == nil)
        h.nextCall(after: .milliseconds(150))
        #expect(h.closedEnd != nil)
    }

    // MARK: - Timers (synthetic time)

    @Test(arguments: [
        ("one whitespace byte", [UInt8](" ".utf8)),
        ("half a frame header", [0x01, 0x10]),
        ("half a JSON object", Array(#"{"jsonrpc":"2.0","me"#.utf8)),
    ])
    func partialMessagesTimeOut(_ name: String, _ bytes: [UInt8]) throws {
        var h = Harness(options: ConnectionOptions(partialMessageTimeout: .seconds(1)))
        h.receive(bytes)
        let start = h.now
        #expect(h.machine.interest.deadline == start + .seconds(1), "\(name)")
        h.nextCall(after: .milliseconds(900))
        #expect(h.closedEnd == nil && h.writes.isEmpty, "\(name)")
        h.nextCall(after: .milliseconds(100))
        let written = h.writes.first ?? []
        if bytes.first == UInt8(ascii: "{") {
            let text = String(decoding: written, as: UTF8.self)
            #expect(text.contains(#""method":"rpc.epitaph""#) && text.contains(#""status":-21"#), "\(name): \(text)")
        } else {
            #expect(try Self.epitaph(in: written)?.status == .timedOut, "\(name)")
        }
    }

    @Test func theDefaultsTimeOutPartialMessagesAndMissingFds() {
        let defaults = ConnectionOptions()
        #expect(defaults.partialMessageTimeout == .seconds(30))
        #expect(defaults.fileDescriptorTimeout == .seconds(10))
        #expect(defaults.idleTimeout == nil)
    }

    @Test func aMessageWaitingForItsFdsTimesOutWithAnAnswerThenTheEpitaph() {
        var h = Harness(options: ConnectionOptions(fileDescriptorTimeout: .seconds(2)))
        h.receive(#"{"jsonrpc":"2.0","method":"readFds","id":7,"fds":1}"#)
        #expect(h.outputs.isEmpty)
        h.nextCall(after: .seconds(2))
        let texts = h.writes.map { String(decoding: $0, as: UTF8.self) }
        #expect(texts.count == 2)
        #expect(texts.first?.contains(#""code":-32050"#) == true && texts.first?.contains(#""id":7"#) == true)
        #expect(texts.last?.contains(#""status":-21"#) == true)
    }

    @Test func idleTimeoutIsOffByDefaultAndFiresWhenSet() throws {
        var quiet = Harness()
        quiet.nextCall(after: .seconds(3600))
        #expect(quiet.closedEnd == nil && quiet.machine.interest.deadline == nil)

        var h = Harness(options: ConnectionOptions(idleTimeout: .seconds(5)))
        h.receive(try Self.frame("x"))
        h.nextCall(after: .seconds(4))
        #expect(h.writes.isEmpty)
        h.nextCall(after: .seconds(1))
        #expect(try Self.epitaph(in: h.writes.last ?? [])?.status == .timedOut)
    }

    // MARK: - Bounded by construction

    @Test func backedUpOutputStopsDecidingInputUntilWritten() throws {
        let options = ConnectionOptions(maxQueuedOutputByteCount: 1000)
        var h = Harness(options: options)
        var probes: [UInt8] = []
        for _ in 0..<50 {
            probes += try ProbeRequest.random().frame.encoded()
        }
        h.receive(probes, flush: false)
        let answered = h.writes.count
        #expect(answered > 0 && answered < 50, "stops deciding once answers pass the cap (\(answered))")
        #expect(!h.machine.interest.read && h.machine.interest.write)
        #expect(h.machine.bufferedByteCount > 0)
        // The peer reads: deciding resumes, and the rest is answered batch by batch.
        for _ in 0..<50 where h.writes.count < 50 {
            h.turn()
            h.written()
        }
        #expect(h.writes.count == 50)
        #expect(h.machine.interest.read)
        #expect(h.machine.receiveStorageByteCount == 0, "the receive buffer is released once drained")
    }

    @Test func aScratchReadKeepsOnlyWhatItReceived() throws {
        let options = ConnectionOptions(
            legacyMode: .perMessage({ bytes in
                bytes.firstIndex(of: 0x0A).map { .complete($0 + 1) } ?? .needMoreBytes
            }))
        var h = Harness(mux: Self.mux(detector: .lineBased()), options: options)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { scratch.deallocate() }
        func read(_ text: String) {
            h.turn()
            h.machine.receive(now: h.now, scratch: scratch) { space in
                let bytes = Array(text.utf8)
                space.copyBytes(from: bytes)
                return .received(byteCount: bytes.count, fileDescriptorCount: 0)
            }
            h.drain()
        }
        read("one\ntwo\nth")
        #expect(h.outputs == [.legacy(Array("one\n".utf8)), .legacy(Array("two\n".utf8))])
        #expect(h.machine.bufferedByteCount == 2)
        #expect(h.machine.receiveStorageByteCount == 10, "storage the size of what was read, not a read-sized chunk")
        // With input buffered, the next read goes to the connection's storage (after the 2 bytes).
        h.turn()
        var offered = 0
        h.machine.receive(now: h.now, scratch: scratch) { space in
            offered = space.count
            space.copyBytes(from: Array("ree\n".utf8))
            return .received(byteCount: 4, fileDescriptorCount: 0)
        }
        h.drain()
        #expect(offered >= ConnectionOptions().receiveChunkByteCount)
        #expect(h.outputs.last == .legacy(Array("three\n".utf8)))
        #expect(h.machine.receiveStorageByteCount == 0)
        h.turn()
        h.machine.receive(now: h.now, scratch: scratch) { _ in .wouldBlock }  // found nothing, keeps nothing
        #expect(h.machine.receiveStorageByteCount == 0)
    }

    // MARK: - JSON-RPC faults

    @Test func aJSONValueThatIsNotAnObjectGetsAnRPCEpitaph() {
        for text in ["[1,2]", "\"s\"", "42", "true", " null"] {
            var h = Harness()
            h.receive(text)
            let written = String(decoding: h.writes.first ?? [], as: UTF8.self)
            #expect(written.contains(#""method":"rpc.epitaph""#), "\(text): \(written)")
            #expect(written.contains(#""status":-45"#), "\(text): \(written)")
        }
    }

    @Test func anInvalidRequestWithoutAnIDIsAnsweredWithANullID() {
        var h = Harness()
        h.receive(#"{"hello":1}{"jsonrpc":"2.0","method":"m","id":2}"#)
        let first = String(decoding: h.writes.first ?? [], as: UTF8.self)
        #expect(first.contains(#""code":-32600"#) && first.contains(#""id":null"#), "\(first)")
        #expect(h.outputs.contains { if case .control = $0 { true } else { false } }, "the connection goes on")
        #expect(h.closedEnd == nil)
    }

    // MARK: - Splits

    @Test func everySplitGivesTheSameOutputs() throws {
        var input: [UInt8] = Array("GET a\n".utf8)
        input += try Self.frame("f1")
        input += try ProbeRequest(nonce: [UInt8](repeating: 9, count: 32)).frame.encoded()
        input += Array(#"{"jsonrpc":"2.0","method":"m","id":1}"#.utf8)
        input += Array("\nSET b 2\n".utf8)
        input += try Self.frame("f2", id: 2)
        func run(_ chunks: [[UInt8]]) -> [Output] {
            var h = Harness(mux: Self.mux(detector: .lineBased()), options: Self.lines)
            for chunk in chunks { h.receive(chunk) }
            h.receive([], endOfInput: true)
            h.nextCall()
            return h.outputs
        }
        let whole = run([input])
        #expect(whole.filter { !$0.isWrite }.count >= 6)
        #expect(run(input.map { [$0] }) == whole)
        var random = SplitMix64(seed: 7)
        for _ in 0..<50 {
            var chunks: [[UInt8]] = []
            var index = 0
            while index < input.count {
                let n = 1 + Int(random.next() % 17)
                chunks.append(Array(input[index..<min(input.count, index + n)]))
                index += n
            }
            #expect(run(chunks) == whole)
        }
    }

    // MARK: - Fds

    @Test func unclaimedFdsAreClosedAtTheEnd() {
        var h = Harness()
        h.receive(Array(#"{"jsonrpc":"2.0","method":"a","id":1,"fds":2}"#.utf8), fds: 3)
        #expect(h.outputs.first == .control(#"{"jsonrpc":"2.0","method":"a","id":1}"#, fds: 2))
        #expect(h.machine.queuedFileDescriptorCount == 1)
        h.receive([], endOfInput: true)
        h.nextCall()
        #expect(h.outputs.contains(.closeFDs(1)))
        #expect(h.machine.queuedFileDescriptorCount == 0)
        #expect(h.closedEnd == .peerClosed)
    }

    @Test func aTurnDeliversABoundedNumberOfEventsSoAnswersCountBeforeMore() {
        var h = Harness(
            mux: Self.mux(detector: .lineBased()),
            options: ConnectionOptions(
                legacyMode: Self.lines.legacyMode, maxQueuedOutputByteCount: 10_000,
                maxEventsPerTurn: 8))
        h.receive(Array(String(repeating: "GET k\n", count: 100).utf8), flush: false)
        #expect(h.outputs.count == 8, "one turn delivers at most 8 events")
        #expect(!h.machine.interest.read && h.machine.interest.deadline == h.now, "paused: call again at once")
        // The daemon answers each with 2,000 bytes (unwritten: the peer does not read).
        for _ in 0..<8 { h.sendLine(String(repeating: "v", count: 1999) + "\n") }
        h.turn()
        h.machine.tick(now: h.now)
        h.drain()
        let delivered = h.outputs.filter { if case .legacy = $0 { true } else { false } }.count
        #expect(delivered == 8, "answers past the cap stop deciding (\(delivered) delivered)")
        // The peer reads everything: deciding resumes, a turn at a time.
        for _ in 0..<40 { h.turn(); h.written(); h.machine.tick(now: h.now); h.drain() }
        #expect(h.outputs.filter { if case .legacy = $0 { true } else { false } }.count == 100)
    }
}
