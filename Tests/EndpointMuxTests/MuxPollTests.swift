import Testing
@_spi(Internals) @testable import EndpointMux

/// Every branch of `EndpointMux.poll`, in the decision order of running-process's mux.
@Suite struct MuxPollTests {
    static let lane: PayloadProtocol = 0x7A63
    let mux = EndpointMux(identity: Vectors.captureIdentity, servedProtocols: [lane])

    func frame(
        _ lane: PayloadProtocol = lane, kind: FrameKind = .request, payload: [UInt8] = Array("hi".utf8),
        requestID: UInt64 = 7
    ) throws -> [UInt8] {
        try Frame(kind: kind, payloadProtocol: lane, payload: payload, requestID: requestID).encoded()
    }

    func probe(
        nonce: [UInt8] = Array(0..<32), kind: FrameKind = .request, envelope: UInt32 = 1,
        encoding: PayloadEncoding = .none
    ) throws -> [UInt8] {
        try Frame(
            envelopeVersion: envelope, kind: kind, payloadProtocol: .identityProbe, payload: nonce,
            requestID: 1, payloadEncoding: encoding
        ).encoded()
    }

    @Test func emptyBufferNeedsMore() throws {
        #expect(try mux.poll([]) == .needMoreBytes)
    }

    @Test func nonFramingByteIsLegacy() throws {
        #expect(try mux.poll(Array("GET / HTTP/1.1\r\n".utf8)) == .legacy)
        #expect(try mux.poll([0x02, 0, 0, 0, 0]) == .legacy)
        #expect(try mux.poll([0x00]) == .legacy)
    }

    @Test func payloadFrameIsDelivered() throws {
        let bytes = try frame()
        guard case let .payload(view, consumed) = try mux.poll(bytes) else { Issue.record("not payload"); return }
        #expect(consumed == bytes.count)
        #expect(view.payloadProtocol == Self.lane)
        #expect(view.requestID == 7)
        #expect(Array(view.payload(in: bytes)) == Array("hi".utf8))
    }

    @Test func everyKindPassesOnAServedLane() throws {
        for kind in [FrameKind.request, .response, .event, .cancel, FrameKind(rawValue: 7)] {
            guard case let .payload(view, _) = try mux.poll(try frame(kind: kind)) else {
                Issue.record("kind \(kind) not delivered"); continue
            }
            #expect(view.kind == kind)
        }
    }

    @Test func everyPrefixNeedsMoreThenDecides() throws {
        let stream = try frame(payload: Array(repeating: 0xAB, count: 300)) + probe()
        let firstLength = try frame(payload: Array(repeating: 0xAB, count: 300)).count
        for cut in 0..<firstLength {
            #expect(try mux.poll(Array(stream[..<cut])) == .needMoreBytes, "prefix \(cut)")
        }
        guard case let .payload(_, consumed) = try mux.poll(Array(stream[..<firstLength])) else {
            Issue.record("no payload at full length"); return
        }
        #expect(consumed == firstLength)
        let rest = Array(stream[firstLength...])
        for cut in 0..<rest.count {
            #expect(try mux.poll(Array(rest[..<cut])) == .needMoreBytes, "probe prefix \(cut)")
        }
        guard case .probeAnswered = try mux.poll(rest) else { Issue.record("probe not answered"); return }
    }

    @Test func severalFramesInOneBuffer() throws {
        var buffer = try frame(requestID: 1) + probe() + frame(requestID: 2) + frame(requestID: 3)
        var seen: [String] = []
        while true {
            let verdict = try mux.poll(buffer)
            switch verdict {
            case .needMoreBytes: break
            case let .payload(view, consumed): seen.append("p\(view.requestID)"); buffer.removeFirst(consumed); continue
            case let .probeAnswered(_, consumed): seen.append("probe"); buffer.removeFirst(consumed); continue
            case .legacy: seen.append("legacy")
            default: seen.append("\(verdict)")
            }
            break
        }
        #expect(seen == ["p1", "probe", "p2", "p3"])
        #expect(buffer.isEmpty)
    }

    @Test func detectorWinsTiesEvenOnFramingByte() throws {
        let legacyOnOne = EndpointMux(
            identity: Vectors.captureIdentity, servedProtocols: [Self.lane],
            legacyDetector: LegacyDetector { $0[0] == 0x01 ? .legacy : .notLegacy })
        #expect(try legacyOnOne.poll(try frame()) == .legacy)
        #expect(try legacyOnOne.poll(try probe()) == .legacy)
        let undecided = EndpointMux(
            identity: Vectors.captureIdentity, servedProtocols: [Self.lane],
            legacyDetector: LegacyDetector { _ in .needMoreBytes })
        #expect(try undecided.poll(try frame()) == .needMoreBytes)
        let never = EndpointMux(
            identity: Vectors.captureIdentity, servedProtocols: [Self.lane],
            legacyDetector: LegacyDetector { _ in .notLegacy })
        guard case .payload = try never.poll(try frame()) else { Issue.record("not payload"); return }
    }

    @Test func bodyOfExactlyTheCapIsAcceptedAndOneMoreIsRejected() throws {
        let cap = V1Framing.defaultMaxBodyByteCount
        // Header claiming exactly 16 MiB: wait for the body.
        let atCap: [UInt8] = [0x01] + withUnsafeBytes(of: UInt32(cap).littleEndian, Array.init)
        #expect(try mux.poll(atCap) == .needMoreBytes)
        // Header claiming 16 MiB + 1: rejected before the body arrives.
        let overCap: [UInt8] = [0x01] + withUnsafeBytes(of: UInt32(cap + 1).littleEndian, Array.init)
        #expect(throws: MuxError.framing(.frameTooLarge(length: UInt64(cap + 1), limit: cap))) { try mux.poll(overCap) }
        let huge: [UInt8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF]
        #expect(throws: MuxError.self) { try mux.poll(huge) }
        // A full 16 MiB body on a served lane is delivered.
        let header = Frame(payloadProtocol: Self.lane, payload: [0]).encodedBody()  // 08 01 18 e3f401 22 01 00
        let fieldsBeforePayload = header.count - 3  // without "22 01 00"
        var lengthVarint: [UInt8] = []
        // payload length so that the body is exactly `cap` bytes (a 4-byte varint length).
        let payloadLength = cap - fieldsBeforePayload - 1 - 4
        var v = UInt32(payloadLength)
        while v >= 0x80 { lengthVarint.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        lengthVarint.append(UInt8(v))
        #expect(lengthVarint.count == 4)
        var body = Array(header[..<fieldsBeforePayload]) + [0x22] + lengthVarint
        body += [UInt8](repeating: 0x5A, count: payloadLength)
        #expect(body.count == cap)
        let full = [0x01] + withUnsafeBytes(of: UInt32(cap).littleEndian, Array.init) + body
        guard case let .payload(view, consumed) = try mux.poll(full) else {
            Issue.record("16 MiB body not delivered"); return
        }
        #expect(consumed == cap + 5)
        #expect(view.payloadRange.count == payloadLength)
    }

    @Test func configurableFrameLimit() throws {
        let small = EndpointMux(
            identity: Vectors.captureIdentity, servedProtocols: [Self.lane],
            limits: MuxLimits(maxFrameBodyByteCount: 16))
        #expect(throws: MuxError.framing(.frameTooLarge(length: 17, limit: 16))) {
            try small.poll([0x01, 17, 0, 0, 0])
        }
    }

    @Test func undecodableBodiesAreErrors() throws {
        let bodies: [[UInt8]] = [
            [0x08],  // truncated varint
            [0x1B],  // wire type 3 (start group)
            [0x22, 0x05, 0x01],  // bytes field longer than the body
            [0x00, 0x01],  // field number 0
            [0x0A, 0x00],  // envelope_version as length-delimited
            [0x42, 0x02, 0xC3, 0x28],  // traceparent with invalid UTF-8
        ]
        for body in bodies {
            let bytes = [0x01] + withUnsafeBytes(of: UInt32(body.count).littleEndian, Array.init) + body
            #expect(throws: MuxError.self, "body \(hexString(body))") { try mux.poll(bytes) }
        }
    }

    @Test func emptyBodyIsTheHelloLaneAndRejected() throws {
        #expect(throws: MuxError.unexpectedFirstPartyFrame(payloadProtocol: .control)) {
            try mux.poll([0x01, 0, 0, 0, 0])
        }
    }

    @Test func malformedProbesAreErrors() throws {
        #expect(throws: MuxError.malformedProbe(.nonceLength(31))) { try mux.poll(try probe(nonce: Array(0..<31))) }
        #expect(throws: MuxError.malformedProbe(.nonceLength(33))) { try mux.poll(try probe(nonce: Array(0..<33))) }
        #expect(throws: MuxError.malformedProbe(.kind(.response))) { try mux.poll(try probe(kind: .response)) }
        #expect(throws: MuxError.malformedProbe(.envelopeVersion(2))) { try mux.poll(try probe(envelope: 2)) }
        #expect(throws: MuxError.malformedProbe(.payloadEncoding(.zstd))) { try mux.poll(try probe(encoding: .zstd)) }
    }

    @Test func probesWithRequestIDZeroAndTraceAreAnswered() throws {
        let request = try Frame(
            payloadProtocol: .identityProbe, payload: Array(0..<32), requestID: 0,
            traceparent: "00-abc-01", tracestate: "k=v"
        ).encoded()
        guard case let .probeAnswered(reply, _) = try mux.poll(request) else { Issue.record("not answered"); return }
        let answer = try Frame(parsingFrame: reply)
        #expect(answer.requestID == 0 && answer.traceparent == "00-abc-01" && answer.tracestate == "k=v")
    }

    @Test(arguments: [PayloadProtocol.control, .admin, .handoff])
    func firstPartyLanesAreErrors(lane: PayloadProtocol) throws {
        #expect(throws: MuxError.unexpectedFirstPartyFrame(payloadProtocol: lane)) { try mux.poll(try frame(lane)) }
        // Even when the daemon lists them as served.
        let greedy = EndpointMux(identity: Vectors.captureIdentity, servedProtocols: [lane, Self.lane])
        #expect(throws: MuxError.unexpectedFirstPartyFrame(payloadProtocol: lane)) { try greedy.poll(try frame(lane)) }
    }

    @Test(arguments: [PayloadProtocol.session, 0x7001, 0xF00D, 0x1_0000])
    func unservedLanesAreErrors(lane: PayloadProtocol) throws {
        #expect(throws: MuxError.unservedPayloadProtocol(payloadProtocol: lane)) { try mux.poll(try frame(lane)) }
    }

    @Test func consumerFramesAreNotEnvelopeValidated() throws {
        let odd = try Frame(
            envelopeVersion: 2, payloadProtocol: Self.lane, payload: [1], requestID: 0,
            payloadEncoding: .zstd, deadlineUnixMilliseconds: 1
        ).encoded()
        guard case let .payload(view, _) = try mux.poll(odd) else { Issue.record("not delivered"); return }
        #expect(view.envelopeVersion == 2 && view.payloadEncoding == .zstd && view.deadlineUnixMilliseconds == 1)
    }
}

/// Control messages through the mux and a session.
@Suite struct MuxControlTests {
    let mux = EndpointMux(identity: Vectors.captureIdentity, servedProtocols: [0x7A63])

    @Test func braceLedInputIsControl() throws {
        let bytes = Array(#"  {"jsonrpc":"2.0","method":"echo","params":[1],"id":7,"fds":2}"#.utf8)
        #expect(try mux.poll(bytes) == .needMoreFileDescriptors(needed: 2, queued: 0))
        guard case let .control(message, fds, consumed) = try mux.poll(bytes, queuedFileDescriptors: 2) else {
            Issue.record("not control"); return
        }
        #expect(fds == 2 && consumed == bytes.count && message.method == "echo")
    }

    @Test func controlCanBeTurnedOff() throws {
        let off = EndpointMux(
            identity: Vectors.captureIdentity, servedProtocols: [0x7A63], acceptsControlMessages: false)
        #expect(try off.poll(Array("{}".utf8)) == .legacy)
    }

    @Test func detectorRunsBeforeControl() throws {
        let json = EndpointMux(
            identity: Vectors.captureIdentity, servedProtocols: [0x7A63],
            legacyDetector: LegacyDetector { $0[0] == UInt8(ascii: "{") ? .legacy : .notLegacy })
        #expect(try json.poll(Array(#"{"jsonrpc":"2.0","method":"x"}"#.utf8)) == .legacy)
    }

    @Test func whitespaceBeforeAFrameIsSkippedOnlyAfterControl() throws {
        var session = MuxSession(mux: mux)
        let control = Array(#"{"jsonrpc":"2.0","method":"n"}"#.utf8)
        let frame = try Frame(payloadProtocol: 0x7A63, payload: [1], requestID: 9).encoded()
        // Without control traffic, whitespace is the daemon's (legacy).
        var fresh = MuxSession(mux: mux)
        #expect(try (Array("  ".utf8) + frame).withUnsafeBytes { try fresh.poll($0) } == .legacy)
        var buffer = control + Array("  ".utf8) + frame
        guard case let .control(_, _, consumed) = try buffer.withUnsafeBytes({ try session.poll($0) }) else {
            Issue.record("not control"); return
        }
        buffer.removeFirst(consumed)
        guard case let .payload(view, frameConsumed) = try buffer.withUnsafeBytes({ try session.poll($0) }) else {
            Issue.record("frame after control whitespace not delivered"); return
        }
        #expect(frameConsumed == buffer.count && view.requestID == 9 && Array(buffer[view.payloadRange]) == [1])
    }

    @Test func endOfInputOutcomes() throws {
        var session = MuxSession(mux: mux)
        #expect(try [UInt8]().withUnsafeBytes { try session.poll($0, endOfInput: true) } == .endOfStream)
        let partial = Array(#"{"jsonrpc":"2.0","#.utf8)
        #expect(throws: MuxError.self) {
            try partial.withUnsafeBytes {
                var s = MuxSession(mux: mux); _ = try s.poll($0, endOfInput: true)
            }
        }
        let waiting = Array(#"{"jsonrpc":"2.0","method":"n","fds":1}"#.utf8)
        #expect(throws: MuxError.control(.mismatchedCount(expected: 1, queued: 0))) {
            try waiting.withUnsafeBytes {
                var s = MuxSession(mux: mux); _ = try s.poll($0, endOfInput: true)
            }
        }
        let frame = Array(try Frame(payloadProtocol: 0x7A63).encoded().dropLast())
        #expect(throws: MuxError.truncatedFrame(bufferedByteCount: frame.count)) {
            try frame.withUnsafeBytes {
                var s = MuxSession(mux: mux); _ = try s.poll($0, endOfInput: true)
            }
        }
    }

    @Test func controlErrorsMapToEpitaphs() {
        #expect(MuxError.control(.mismatchedCount(expected: 2, queued: 0)).epitaphStatus == .badState)
        #expect(MuxError.control(.messageTooLarge(limit: 1)).epitaphStatus == .outOfRange)
        #expect(MuxError.control(.invalidFileDescriptorCount(found: "-1")).epitaphStatus == .invalidArguments)
        #expect(MuxError.control(.tooManyFileDescriptors(count: 2000, limit: 1024)).epitaphStatus == .noResources)
        #expect(MuxError.control(.mismatchedCount(expected: 2, queued: 0)).jsonRPCCode == -32050)
        #expect(MuxError.framing(.frameTooLarge(length: 1, limit: 0)).epitaphStatus == .outOfRange)
        #expect(MuxError.unservedPayloadProtocol(payloadProtocol: 0x7001).epitaphStatus == .notSupported)
    }
}
