import CMallocCounter
import Glibc

/// A minimal benchmark harness: runs `body` in batches, reports the median ns (of the
/// thread's CPU time) per operation and the allocations per operation as one `BENCH` line.
struct Bench {
    /// The fastest batch's ns per operation of the last ``run(_:operationsPerCall:minimumBatchNanoseconds:batches:_:)``.
    nonisolated(unsafe) static var lastFastest: Double = 0

    /// The benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the
    /// machine is shared (2 cores, other builds), and wall time counts the slices the
    /// scheduler gives to other processes. On an idle machine the two agree.
    static func nowNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Wall-clock time (for timing child processes).
    static func wallNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// - Parameters:
    ///   - operationsPerCall: how many operations one call of `body` performs.
    ///   - batches: measured batches; the median batch is reported.
    @discardableResult
    static func run(
        _ name: String, operationsPerCall: Int = 1, minimumBatchNanoseconds: UInt64 = 20_000_000,
        batches: Int = 15, _ body: () -> Void
    ) -> Double {
        if !Bench.selected(name) { return 0 }
        // Warm up and size a batch to ~minimumBatchNanoseconds.
        var callsPerBatch = 1
        while true {
            let start = nowNanoseconds()
            for _ in 0..<callsPerBatch { body() }
            let elapsed = nowNanoseconds() - start
            if elapsed >= minimumBatchNanoseconds || callsPerBatch >= 1 << 30 { break }
            callsPerBatch *= 2
        }
        var samples: [Double] = []
        samples.reserveCapacity(batches)
        var allocations: UInt64 = 0
        for _ in 0..<batches {
            let allocationsBefore = endpointmux_allocation_count()
            let start = nowNanoseconds()
            for _ in 0..<callsPerBatch { body() }
            let elapsed = nowNanoseconds() - start
            allocations += endpointmux_allocation_count() - allocationsBefore
            samples.append(Double(elapsed) / Double(callsPerBatch * operationsPerCall))
        }
        samples.sort()
        let median = samples[samples.count / 2]
        lastFastest = samples[0]
        let allocationsPerOperation = Double(allocations) / Double(batches * callsPerBatch * operationsPerCall)
        print("BENCH \(name) \(format(median)) \(format(allocationsPerOperation))")
        return median
    }

    /// `MUX_BENCH_ONLY`: run the benchmarks whose names start with it (or, ending in `$`,
    /// the one named exactly so).
    static func selected(_ name: String) -> Bool {
        guard let only = getenv("MUX_BENCH_ONLY").map({ String(cString: $0) }) else { return true }
        return only.hasSuffix("$") ? name == String(only.dropLast()) : name.hasPrefix(only)
    }

    /// Measures the cases `names` alternately: `rounds` rounds, each running every case for `batches`
    /// batches (order reversed every other round), then one `BENCH` line per case with the
    /// median of its rounds' medians, in the order given. On a shared machine load drifts
    /// over seconds; interleaving makes a case and its baseline see the same drift.
    /// Returns the figures in the order of `names` (0 for cases not selected).
    /// `body(i)` runs one operation of case `i` (a switch: non-escaping, so captured
    /// variables need no run-time exclusivity checks).
    @discardableResult
    static func interleaved(
        _ names: [String], rounds: Int = 7, batches: Int = 5, minimumBatchNanoseconds: UInt64 = 10_000_000,
        _ body: (Int) -> Void
    ) -> [Double] {
        let active = names.indices.filter { selected(names[$0]) }
        var callsPerBatch = [Int](repeating: 1, count: names.count)
        for index in active {
            while true {
                let start = nowNanoseconds()
                for _ in 0..<callsPerBatch[index] { body(index) }
                if nowNanoseconds() - start >= minimumBatchNanoseconds || callsPerBatch[index] >= 1 << 30 { break }
                callsPerBatch[index] *= 2
            }
        }
        var roundMedians = [[Double]](repeating: [], count: names.count)
        var allocations = [UInt64](repeating: 0, count: names.count)
        for round in 0..<rounds {
            for index in (round % 2 == 0 ? active : active.reversed()) {
                let calls = callsPerBatch[index]
                var samples: [Double] = []
                for _ in 0..<batches {
                    let allocationsBefore = endpointmux_allocation_count()
                    let start = nowNanoseconds()
                    for _ in 0..<calls { body(index) }
                    let elapsed = nowNanoseconds() - start
                    allocations[index] += endpointmux_allocation_count() - allocationsBefore
                    samples.append(Double(elapsed) / Double(calls))
                }
                samples.sort()
                roundMedians[index].append(samples[samples.count / 2])
            }
        }
        var results = [Double](repeating: 0, count: names.count)
        for index in active {
            let sorted = roundMedians[index].sorted()
            results[index] = sorted[sorted.count / 2]
            let perOperation = Double(allocations[index]) / Double(rounds * batches * callsPerBatch[index])
            print("BENCH \(names[index]) \(format(results[index])) \(format(perOperation))")
        }
        return results
    }

    static func format(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}

@inline(never)
func blackHole<T>(_ value: T) {
    withUnsafePointer(to: value) { endpointmux_black_hole($0, 0) }
}
