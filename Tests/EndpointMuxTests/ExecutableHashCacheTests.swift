import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux

/// The in-process digest cache behind `DaemonIdentity.current`.
@Suite(.serialized) struct ExecutableHashCacheTests {
    @Test func cachesPerFileVersionAndRehashesChangedFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hash-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("exe").path
        var generator = SplitMix64(seed: 99)
        let first = (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try Data(first).write(to: URL(fileURLWithPath: path))

        #expect(!ExecutableHashCache.contains(fileAtPath: path))
        #expect(try ExecutableHashCache.hash(fileAtPath: path) == BLAKE3.hash(first))
        #expect(ExecutableHashCache.contains(fileAtPath: path))
        #expect(try ExecutableHashCache.hash(fileAtPath: path) == BLAKE3.hash(first))

        // Rewritten in place (same inode, new size and times): hashed again.
        let second = first + [1, 2, 3]
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.write(contentsOf: Data(second))
        try handle.close()
        #expect(!ExecutableHashCache.contains(fileAtPath: path))
        #expect(try ExecutableHashCache.hash(fileAtPath: path) == BLAKE3.hash(second))

        // Replaced by another file (new inode): hashed again.
        let third = Array(second.reversed())
        try Data(third).write(to: URL(fileURLWithPath: path), options: .atomic)
        #expect(try ExecutableHashCache.hash(fileAtPath: path) == BLAKE3.hash(third))

        ExecutableHashCache.removeAll()
        #expect(!ExecutableHashCache.contains(fileAtPath: path))
        #expect(
            throws: EndpointMuxError.system(
                operation: "open", path: directory.appendingPathComponent("missing").path, errno: ENOENT)
        ) {
            try ExecutableHashCache.hash(fileAtPath: directory.appendingPathComponent("missing").path)
        }
    }
}
