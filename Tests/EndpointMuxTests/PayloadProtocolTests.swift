import Testing
@_spi(Internals) @testable import EndpointMux

@Suite struct PayloadProtocolTests {
    @Test func firstPartyIsExactlyTheFourElementList() {
        for raw in UInt32(0)...0x1_0000 {
            let lane = PayloadProtocol(rawValue: raw)
            #expect(lane.isFirstParty == PayloadProtocol.firstParty.contains(lane), "\(lane)")
        }
        #expect(PayloadProtocol.firstParty.map(\.rawValue) == [0x0000, 0xAD01, 0xB232, 0xD0FF])
        #expect(!PayloadProtocol.session.isFirstParty)
        #expect(!PayloadProtocol(rawValue: 0x0001).isFirstParty)
    }

    @Test func ranges() {
        #expect(
            PayloadProtocol(rawValue: 0x7000).isRegisteredConsumer
                && PayloadProtocol(rawValue: 0x7EFF).isRegisteredConsumer)
        #expect(
            !PayloadProtocol(rawValue: 0x7F00).isRegisteredConsumer
                && !PayloadProtocol(rawValue: 0x6FFF).isRegisteredConsumer)
        #expect(PayloadProtocol(rawValue: 0xF000).isPrivateUse && PayloadProtocol(rawValue: 0xFFFF).isPrivateUse)
        #expect(!PayloadProtocol(rawValue: 0x1_0000).isPrivateUse)
        #expect(PayloadProtocol.zccache.isServiceLane && !PayloadProtocol.identityProbe.isServiceLane)
        #expect(!PayloadProtocol(rawValue: 0x7F00).isServiceLane)
        #expect(PayloadProtocol.defaultEpitaph.isPrivateUse)
    }

    @Test func parsingAndDescription() {
        #expect(PayloadProtocol(parsing: "0x7A63") == .zccache)
        #expect(PayloadProtocol(parsing: "31331") == .zccache)
        #expect(PayloadProtocol(parsing: "0xZZ") == nil)
        #expect(PayloadProtocol.control.description == "0x0000")
        #expect(PayloadProtocol(rawValue: 0x1_0000).description == "0x10000")
    }
}
