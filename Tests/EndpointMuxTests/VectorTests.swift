import Testing
@_spi(Internals) @testable import EndpointMux

/// Byte-exact agreement with the captured running-process 4.10.17 traffic.
@Suite struct VectorTests {
    let mux = EndpointMux(identity: Vectors.captureIdentity, servedProtocols: [Vectors.captureLane])

    @Test func probeRequestEncodesLikeTheReference() throws {
        let request = try ProbeRequest(nonce: Array(0..<32))
        #expect(request.requestID == 506_097_522_914_230_528)
        #expect(try request.frame.encoded() == Vectors.hexFile("probe-request.hex"))
    }

    @Test func probeAnswerIsByteExact() throws {
        let request = try Vectors.hexFile("probe-request.hex")
        guard case let .probeAnswered(reply, consumed) = try mux.poll(request) else {
            Issue.record("probe was not answered"); return
        }
        #expect(consumed == request.count)
        #expect(hexString(reply) == hexString(try Vectors.hexFile("probe-response.hex")))
    }

    @Test func probeAnswerValidatesOnTheClientSide() throws {
        let request = try ProbeRequest(nonce: Array(0..<32))
        let answer = try Frame(parsingFrame: Vectors.hexFile("probe-response.hex"))
        let response = try ProbeResponse(validating: answer, for: request)
        #expect(response.identity == Vectors.captureIdentity)
    }

    @Test func pingRoundTrip() throws {
        let requestBytes = try Vectors.hexFile("request-ping.hex")
        let request = try Frame(parsingFrame: requestBytes)
        #expect(request == Frame(payloadProtocol: Vectors.captureLane, payload: Array("ping".utf8), requestID: 1))
        #expect(try request.encoded() == requestBytes)
        let reply = request.response(payload: Array("echo:ping".utf8))
        #expect(try reply.encoded() == Vectors.hexFile("response-ping.hex"))
    }

    /// Replays every captured exchange through the mux with the capture server's handler
    /// (`echo:` + payload, `empty` → empty reply, non-REQUEST ignored) and compares bytes.
    /// One row of frames-misc.tsv, shown by its name.
    struct Exchange: CustomTestStringConvertible, Sendable {
        let row: [String: String]
        var testDescription: String { row["name"] ?? "?" }
    }

    static let exchanges = ((try? Vectors.tsv("frames-misc.tsv")) ?? []).map(Exchange.init)

    @Test func allExchangesLoaded() { #expect(Self.exchanges.count == 24) }

    @Test(arguments: exchanges)
    func capturedExchange(exchange: Exchange) throws {
        let row = exchange.row
        let name = row["name"] ?? "?"
        var input = try hex(row["request_hex"] ?? "")
        let expected = try hex(row["response_hex"] ?? "")
        // The wheel client's own probe carries a random nonce: answers share the identity.
        var output: [UInt8] = []
        loop: while true {
            switch try mux.poll(input) {
            case .needMoreBytes:
                break loop
            case .legacy, .control, .invalidControl, .needMoreFileDescriptors, .endOfStream:
                Issue.record("\(name): unexpected verdict"); return
            case let .probeAnswered(reply, consumed):
                output += reply
                input.removeFirst(consumed)
            case let .payload(view, consumed):
                if view.kind == .request {
                    let payload = Array(view.payload(in: input))
                    let replyPayload = payload == Array("empty".utf8) ? [] : Array("echo:".utf8) + payload
                    output += try view.frame(in: input).response(payload: replyPayload).encoded()
                }
                input.removeFirst(consumed)
            }
        }
        #expect(input.isEmpty, "\(name): bytes left over")
        #expect(hexString(output) == hexString(expected), "\(name)")
    }
}
