import Testing

@testable import EndpointMux

@Suite struct MonotonicInstantTests {
    @Test func monotonicInstantsConvertBothWaysAndKeepOrder() {
        let now = ContinuousClock.now
        let instant = MonotonicInstant(now)
        #expect(instant.instant == now)
        #expect(MonotonicInstant(now + .nanoseconds(1)) > instant)
        #expect(MonotonicInstant(now + .milliseconds(3)) - instant == .milliseconds(3))
        #expect((instant + .seconds(2)).instant == now + .seconds(2))
        #expect((instant + .milliseconds(7)).pollTimeout(now: instant) == 7)
        #expect((instant + .microseconds(1)).pollTimeout(now: instant) == 1)
        #expect(instant.pollTimeout(now: instant + .seconds(1)) == 0)
    }
}
