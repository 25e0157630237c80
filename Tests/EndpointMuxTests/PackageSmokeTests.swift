import Testing
@testable import EndpointMux

@Test func payloadProtocolFirstPartyIsAList() {
    #expect(PayloadProtocol.identityProbe.isFirstParty)
    #expect(!PayloadProtocol.session.isFirstParty)
}
