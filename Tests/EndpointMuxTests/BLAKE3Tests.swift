import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux

import Glibc

/// BLAKE3 checked against the reference `b3sum` (an oracle run on the same bytes), plus
/// known answers and error paths. `b3sum` is required: CI installs it (`apt-get install b3sum`).
@Suite("BLAKE3")
struct BLAKE3Tests {
    /// Byte counts around the block (64) and chunk (1024) boundaries, and a multi-level tree.
    static let fixedSizes = [0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 3073, (1 << 20) + 17]

    /// Input lengths of the official BLAKE3 test vectors (input byte i is i % 251).
    static let officialLengths = [0, 1, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 31744, 102400]

    /// Split sizes for incremental hashing.
    static let splits = [1, 7, 64, 1000, 1025]

    @Test("b3sum oracle is installed")
    func oracleIsInstalled() throws {
        _ = try B3Sum.executable()
    }

    @Test("empty input has the published digest")
    func emptyInput() {
        let expected = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        #expect(hex(BLAKE3.hash([UInt8]())) == expected)
        #expect(hex(BLAKE3().finalize()) == expected)
        #expect(hex(BLAKE3.hash(UnsafeRawBufferPointer(start: nil, count: 0))) == expected)
        #expect(BLAKE3.outputByteCount == 32)
    }

    @Test("matches b3sum on seeded pseudo-random contents", arguments: fixedSizes)
    func fixedSize(size: Int) throws {
        var generator = SplitMix64(seed: 0xB1A4E3 &+ UInt64(size))
        try checkAgainstOracle(randomBytes(size, using: &generator))
    }

    @Test("matches b3sum on random sizes")
    func randomSizes() throws {
        var generator = SplitMix64(seed: 0x5EED_B1A4E3)
        for _ in 0..<6 {
            let size = Int.random(in: 0...300_000, using: &generator)
            try checkAgainstOracle(randomBytes(size, using: &generator))
        }
    }

    @Test("matches b3sum on the official test-vector input pattern", arguments: officialLengths)
    func officialPattern(length: Int) throws {
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 % 251) }
        try checkAgainstOracle(bytes)
    }

    /// At least 200 lengths: every chunk and tree boundary the four-wide, eight-wide and
    /// subtree paths meet (0, 1, 1023…1025, 2048, 4096·k ± 1, 8 KiB·k ± 1, 16 KiB·k ± 1,
    /// 256 KiB·k ± 1), random lengths, and a few MiB; each hashed one-shot and in random
    /// pieces (so batches start at chunk counters that are not multiples of 4, 8 or 16) by
    /// every implementation this CPU runs (portable Swift, AVX2, AVX-512), all checked by one
    /// `b3sum` run.
    @Test(
        "matches b3sum on 200+ lengths around chunk and tree boundaries, one-shot and in random pieces, every implementation"
    )
    func manyLengths() throws {
        var lengths = [0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 3072, 5120]
        for k in 1...17 { lengths += [4096 * k - 1, 4096 * k, 4096 * k + 1] }
        for k in [3, 5, 9, 17, 33] { lengths += [8192 * k - 1, 8192 * k + 1] }
        for k in [1, 2, 3, 4, 5, 8] { lengths += [16384 * k - 1, 16384 * k + 1] }
        for k in [1, 2, 3, 5] { lengths += [262_144 * k - 1, 262_144 * k, 262_144 * k + 1] }
        lengths += [(2 << 20) + 1, (3 << 20) - 1, (4 << 20) + 8 * 1024 + 5]
        var generator = SplitMix64(seed: 0x2001_B1A4E3)
        while lengths.count < 230 {
            lengths.append(Int.random(in: 0...(Bool.random(using: &generator) ? 9000 : 70_000), using: &generator))
        }
        let directory = try TemporaryDirectory()
        var inputs: [(path: String, bytes: [UInt8])] = []
        for (index, length) in lengths.enumerated() {
            let path = directory.path("len-\(index)-\(length)")
            let bytes = randomBytes(length, using: &generator)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            inputs.append((path, bytes))
        }
        let expected = try B3Sum.digests(ofFilesAtPaths: inputs.map(\.path))
        #expect(expected.count == inputs.count)
        let implementations = BLAKE3.Implementation.allCases.filter(\.isAvailable)
        for ((path, bytes), digest) in zip(inputs, expected) {
            #expect(BLAKE3.hash(bytes) == digest, "one-shot, \(bytes.count) bytes")
            for implementation in implementations {
                var oneShot = BLAKE3(implementation: implementation)
                oneShot.update(bytes)
                #expect(oneShot.finalize() == digest, "one-shot, \(implementation), \(bytes.count) bytes")
                var hasher = BLAKE3(implementation: implementation)
                var offset = 0
                while offset < bytes.count {
                    // Pieces of up to 300 KiB, cut anywhere: batches start at any chunk counter.
                    let limit = Bool.random(using: &generator) ? 40_000 : 300_000
                    let end = min(bytes.count, offset + Int.random(in: 1...limit, using: &generator))
                    hasher.update(bytes[offset..<end])
                    offset = end
                }
                #expect(hasher.finalize() == digest, "random pieces, \(implementation), \(bytes.count) bytes")
            }
            if bytes.count > 1 << 20 {
                #expect(try BLAKE3.hash(fileAtPath: path) == digest, "file, \(bytes.count) bytes")
            }
        }
    }

    /// The SIMD paths must be the ones in use wherever the CPU has them (else the tests
    /// above would check only the fallback on such machines).
    @Test("the AVX-512 / AVX2 implementation is chosen when the CPU has it")
    func avx2IsChosen() throws {
        #if arch(x86_64) && os(Linux)
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flags = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ") ?? []
        let hasAVX2 = flags.contains("avx2"), hasAVX512 = hasAVX2 && flags.contains("avx512f")
        #expect(BLAKE3.Implementation.avx2.isAvailable == hasAVX2)
        #expect(BLAKE3.Implementation.avx512.isAvailable == hasAVX512)
        #expect(BLAKE3.bestImplementation == (hasAVX512 ? .avx512 : hasAVX2 ? .avx2 : .portable))
        #endif
        #expect(BLAKE3.Implementation.portable.isAvailable)
    }

    @Test("finalize does not consume the hasher")
    func finalizeIsNonMutating() {
        var generator = SplitMix64(seed: 42)
        let bytes = randomBytes(5000, using: &generator)
        var hasher = BLAKE3()
        hasher.update(bytes[..<1500])
        let partial = hasher.finalize()
        #expect(partial == hasher.finalize())
        #expect(partial == BLAKE3.hash(Array(bytes[..<1500])))
        let copy = hasher
        hasher.update(bytes[1500...])
        #expect(hasher.finalize() == BLAKE3.hash(bytes))
        #expect(copy.finalize() == partial)
    }

    @Test("non-contiguous sequences hash like arrays")
    func nonContiguousSequence() {
        var generator = SplitMix64(seed: 7)
        let bytes = randomBytes(10_000, using: &generator)
        var hasher = BLAKE3()
        hasher.update(AnySequence(bytes))
        #expect(hasher.finalize() == BLAKE3.hash(bytes))
    }

    @Test("a missing file throws open/ENOENT")
    func missingFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("does-not-exist")
        #expect(throws: EndpointMuxError.system(operation: "open", path: path, errno: ENOENT)) {
            try BLAKE3.hash(fileAtPath: path)
        }
    }

    @Test("a directory throws read/EISDIR")
    func directoryPath() throws {
        let directory = try TemporaryDirectory()
        #expect(throws: EndpointMuxError.system(operation: "read", path: directory.url.path, errno: EISDIR)) {
            try BLAKE3.hash(fileAtPath: directory.url.path)
        }
    }

    // MARK: Helpers

    /// Writes `bytes` to a temporary file and checks every entry point against `b3sum`.
    private func checkAgainstOracle(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("input-\(bytes.count)")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let expected = try B3Sum.digest(ofFileAtPath: path)
        let size = bytes.count

        #expect(
            try BLAKE3.hash(fileAtPath: path) == expected, "hash(fileAtPath:), \(size) bytes",
            sourceLocation: sourceLocation)
        #expect(BLAKE3.hash(bytes) == expected, "hash([UInt8]), \(size) bytes", sourceLocation: sourceLocation)
        bytes.withUnsafeBytes { raw in
            #expect(
                BLAKE3.hash(raw) == expected, "hash(UnsafeRawBufferPointer), \(size) bytes",
                sourceLocation: sourceLocation)
            for implementation in BLAKE3.Implementation.allCases where implementation.isAvailable {
                var hasher = BLAKE3(implementation: implementation)
                hasher.update(raw)
                #expect(
                    hasher.finalize() == expected, "\(implementation), \(size) bytes", sourceLocation: sourceLocation)
            }
        }
        for split in Self.splits {
            var hasher = BLAKE3()
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let end = min(offset + split, raw.count)
                    hasher.update(UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
                    offset = end
                }
            }
            #expect(
                hasher.finalize() == expected, "update in \(split)-byte pieces, \(size) bytes",
                sourceLocation: sourceLocation)
        }
        // Mixed piece sizes through the Sequence overload (array slices).
        var hasher = BLAKE3()
        var offset = 0
        var piece = 0
        while offset < size {
            let end = min(offset + Self.splits[piece % Self.splits.count] * (piece % 3 + 1), size)
            hasher.update(bytes[offset..<end])
            offset = end
            piece += 1
        }
        #expect(hasher.finalize() == expected, "update in mixed pieces, \(size) bytes", sourceLocation: sourceLocation)
    }
}

// MARK: - Oracle and fixtures

/// The reference `b3sum` tool.
private enum B3Sum {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The path of `b3sum`: /usr/bin/b3sum, else the first one on `PATH`.
    static func executable() throws -> String {
        var candidates = ["/usr/bin/b3sum"]
        if let path = ProcessInfo.processInfo.environment["PATH"] {
            candidates += path.split(separator: ":").map { "\($0)/b3sum" }
        }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Failure(
                description:
                    "b3sum not found (looked in /usr/bin and PATH); the BLAKE3 tests need it as their oracle: apt-get install b3sum"
            )
        }
        return found
    }

    /// Runs one `b3sum --no-names` over `paths` and parses the digests, in order.
    static func digests(ofFilesAtPaths paths: [String]) throws -> [[UInt8]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executable())
        process.arguments = ["--no-names"] + paths
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "b3sum exited with status \(process.terminationStatus)")
        }
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
            guard let digest = bytes(fromHex: String(line)), digest.count == BLAKE3.outputByteCount else {
                throw Failure(description: "unexpected b3sum output line \"\(line)\"")
            }
            return digest
        }
    }

    /// Runs `b3sum --no-names path` and parses the 32-byte hex digest.
    static func digest(ofFileAtPath path: String) throws -> [UInt8] {
        let digests = try digests(ofFilesAtPaths: [path])
        guard digests.count == 1, let digest = digests.first else {
            throw Failure(description: "b3sum printed \(digests.count) digests for \(path)")
        }
        return digest
    }
}

/// A directory under the system temporary directory, removed when the value is released.
private final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("blake3-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String {
        url.appendingPathComponent(name).path
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }
}

/// SplitMix64: a small, deterministic generator for reproducible test data.

private func randomBytes(_ count: Int, using generator: inout SplitMix64) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count + 8)
    while bytes.count < count {
        withUnsafeBytes(of: generator.next().littleEndian) { bytes.append(contentsOf: $0) }
    }
    bytes.removeLast(bytes.count - count)
    return bytes
}

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

private func bytes(fromHex text: String) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count.isMultiple(of: 2) else { return nil }
    var result: [UInt8] = []
    var index = 0
    while index < digits.count {
        guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
        result.append(high << 4 | low)
        index += 2
    }
    return result
}

private func nibble(_ digit: UInt8) -> UInt8? {
    switch digit {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
    default: nil
    }
}
