/// An instant of `ContinuousClock`, stored as the time since the clock's epoch.
///
/// `ContinuousClock.Instant` is a resilient type of the Swift runtime: outside it, its size
/// is known only at run time, so every struct or enum that stores one has a run-time
/// layout too, and each copy, assignment or `switch` of it goes through the runtime
/// (value witnesses, `swift_getEnumCaseMultiPayload`). The state machines store this
/// instead and convert once per input, at their entry points, which keeps their hot
/// paths (several assignments per decided message) plain loads and stores.
package struct MonotonicInstant: Comparable, Hashable, Sendable {
    /// Time since `ContinuousClock`'s epoch.
    package var sinceEpoch: Duration

    /// The same instant as `instant`.
    @inlinable
    package init(_ instant: ContinuousClock.Instant) {
        sinceEpoch = ContinuousClock().systemEpoch.duration(to: instant)
    }

    /// The instant `sinceEpoch` after the clock's epoch.
    @inlinable
    package init(sinceEpoch: Duration) {
        self.sinceEpoch = sinceEpoch
    }

    /// The same instant as a `ContinuousClock.Instant`.
    @inlinable
    package var instant: ContinuousClock.Instant {
        ContinuousClock().systemEpoch.advanced(by: sinceEpoch)
    }

    @inlinable
    package static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool {
        lhs.sinceEpoch < rhs.sinceEpoch
    }

    @inlinable
    package static func + (lhs: MonotonicInstant, rhs: Duration) -> MonotonicInstant {
        MonotonicInstant(sinceEpoch: lhs.sinceEpoch + rhs)
    }

    @inlinable
    package static func - (lhs: MonotonicInstant, rhs: Duration) -> MonotonicInstant {
        MonotonicInstant(sinceEpoch: lhs.sinceEpoch - rhs)
    }

    /// The time from `rhs` to `lhs`.
    @inlinable
    package static func - (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Duration {
        lhs.sinceEpoch - rhs.sinceEpoch
    }

    /// Milliseconds from `now` until this instant for a `poll(2)` or `epoll_wait` timeout:
    /// rounded up, so that a sub-millisecond remainder waits instead of spinning; 0 once
    /// it has passed; `Int32.max` when further away than that.
    package func pollTimeout(now: MonotonicInstant) -> Int32 {
        guard now < self else { return 0 }
        let (seconds, attoseconds) = (sinceEpoch - now.sinceEpoch).components
        let wholeMilliseconds = attoseconds / 1_000_000_000_000_000
        let roundUp: Int64 = attoseconds % 1_000_000_000_000_000 == 0 ? 0 : 1
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return Int32.max }
        let total = scaled.addingReportingOverflow(wholeMilliseconds + roundUp)
        guard !total.overflow else { return Int32.max }
        return Int32(clamping: total.partialValue)
    }
}
