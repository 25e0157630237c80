import CMallocCounter
#if canImport(Glibc)
import Glibc
#endif

/// A minimal benchmark harness: runs `body` in batches, reports the median ns per
/// operation and the allocations per operation as one `BENCH` line.
struct Bench {
    /// The fastest batch's ns per operation of the last ``run(_:operationsPerCall:minimumBatchNanoseconds:batches:_:)``.
    nonisolated(unsafe) static var lastFastest: Double = 0

    static func nowNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// - Parameters:
    ///   - operationsPerCall: how many operations one call of `body` performs.
    ///   - batches: measured batches; the median batch is reported.
    @discardableResult
    static func run(_ name: String, operationsPerCall: Int = 1, minimumBatchNanoseconds: UInt64 = 20_000_000,
                    batches: Int = 15, _ body: () -> Void) -> Double {
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

    static func format(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}

@inline(never)
func blackHole<T>(_ value: T) {
    withUnsafePointer(to: value) { endpointmux_black_hole($0, 0) }
}
