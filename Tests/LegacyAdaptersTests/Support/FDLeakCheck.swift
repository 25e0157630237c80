import Foundation
import Testing
@testable import LegacyAdapters

/// The number of open descriptors in this process, from `/proc/self/fd`.
///
/// The listing itself holds one directory descriptor while it runs; it is counted every
/// time, so differences between two calls are exact.
enum OpenFileDescriptorCount {
    static func current() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }
}

/// Parent of every suite in this target that checks `/proc/self/fd` counts.
///
/// `.serialized` is inherited by nested suites, so no two descriptor-counting tests run at
/// the same time. **Rule for new suites in LegacyAdaptersTests:** a suite that opens
/// descriptors or counts them must be declared inside this one
/// (`extension FileDescriptorSuites { @Suite struct … }`), or it will disturb the counts.
/// Suites in other targets still run concurrently; ``expectNoFileDescriptorLeaks(_:sourceLocation:)``
/// rechecks for a while before reporting, so a transient descriptor elsewhere is not a leak.
@Suite(.serialized)
struct FileDescriptorSuites {}

/// Runs `body` and expects the process to hold as many descriptors afterwards as before.
func expectNoFileDescriptorLeaks<R>(
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> R
) rethrows -> R {
    _ = MuxEventLoopGroup.shared  // the library's loops live as long as the process
    let before = OpenFileDescriptorCount.current()
    let result = try body()
    expectSettled(at: before, sourceLocation: sourceLocation)
    return result
}

/// Async form of ``expectNoFileDescriptorLeaks(sourceLocation:_:)``.
func expectNoFileDescriptorLeaks<R>(
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> R
) async rethrows -> R {
    _ = MuxEventLoopGroup.shared  // the library's loops live as long as the process
    let before = OpenFileDescriptorCount.current()
    let result = try await body()
    expectSettled(at: before, sourceLocation: sourceLocation)
    return result
}

/// Expects the count to return to `before`, looking again for up to a second so that a
/// descriptor opened briefly by a test in another target is not reported as a leak.
private func expectSettled(at before: Int, sourceLocation: SourceLocation) {
    var after = OpenFileDescriptorCount.current()
    var attempts = 0
    while after != before && attempts < 50 {
        usleep(20_000)
        after = OpenFileDescriptorCount.current()
        attempts += 1
    }
    #expect(after == before, "open descriptors: \(before) before, \(after) after", sourceLocation: sourceLocation)
}
