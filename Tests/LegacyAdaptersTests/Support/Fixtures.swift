import CSocketShims
@_spi(Internals) import EndpointMux
import Foundation
import Testing
@testable import LegacyAdapters

/// A failed system call in a test fixture.
struct FixtureError: Error, CustomStringConvertible {
    var operation: String
    var errno: Int32
    var description: String { "\(operation): errno \(errno)" }
}

/// A connected `AF_UNIX` / `SOCK_STREAM` pair (both ends blocking, close-on-exec).
func makeSocketPair() throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
        throw FixtureError(operation: "socketpair", errno: errno)
    }
    return (fds[0], fds[1])
}

/// Writes all of `bytes` to `fd` (blocking).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw FixtureError(operation: "write", errno: errno)
        }
        offset += n
    }
}

/// The read end of a pipe whose buffer holds `text` and whose write end is closed.
func makePipe(holding text: String) throws -> Int32 {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw FixtureError(operation: "pipe", errno: errno) }
    defer { close(fds[1]) }
    do {
        try writeAll(fds[1], Array(text.utf8))
    } catch {
        close(fds[0])
        throw error
    }
    return fds[0]
}

/// Read ends of `count` pipes, pipe `i` holding `"fd-i"`.
func makePipes(_ count: Int) throws -> [Int32] {
    var fds: [Int32] = []
    do {
        for index in 0..<count { fds.append(try makePipe(holding: "fd-\(index)")) }
    } catch {
        fds.forEach { close($0) }
        throw error
    }
    return fds
}

/// A memfd holding `text`.
func makeMemfd(holding text: String) throws -> Int32 {
    let fd = endpointmux_memfd_create("legacy-adapters-test")
    guard fd >= 0 else { throw FixtureError(operation: "memfd_create", errno: errno) }
    do { try writeAll(fd, Array(text.utf8)) } catch { close(fd); throw error }
    return fd
}

/// An unlinked temporary file holding `text`.
func makeTemporaryFile(holding text: String) throws -> Int32 {
    var template = Array("/tmp/legacy-adapters-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw FixtureError(operation: "mkstemp", errno: errno) }
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    do { try writeAll(fd, Array(text.utf8)) } catch { close(fd); throw error }
    return fd
}

/// What a file, memfd or pipe holds (up to 4 KiB): `pread` from offset 0, or plain reads
/// to end of file for pipes.
func contents(of fd: Int32) -> String {
    var buffer = [UInt8](repeating: 0, count: 4096)
    var n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
    if n < 0 && errno == ESPIPE {
        var total = 0
        while total < buffer.count {
            let chunk = buffer[total...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if chunk < 0 && errno == EINTR { continue }
            if chunk <= 0 { break }
            total += chunk
        }
        n = total
    }
    return String(decoding: buffer[0..<Swift.max(n, 0)], as: UTF8.self)
}

/// Whether `fd` is an open descriptor.
func isOpen(_ fd: Int32) -> Bool {
    fcntl(fd, F_GETFD) >= 0
}

/// Runs `body` on a new thread of its own, so blocking calls never hold a thread of the
/// Swift concurrency pool.
func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do {
                continuation.resume(returning: try body())
            } catch {
                continuation.resume(throwing: error)
            }
        }
        thread.start()
    }
}

/// What a reader got from a socket.
struct ReceiveLog: Sendable {
    /// One `recvmsg` that returned bytes: how many bytes and descriptors it delivered.
    struct Call: Sendable, Equatable {
        var bytes: Int
        var fds: Int
    }

    var bytes: [UInt8] = []
    var calls: [Call] = []
    /// Contents of every received descriptor, in queue order (each was then closed).
    var contents: [String] = []
    var sawEndOfFile = false

    var fdCountsPerCall: [Int] { calls.map(\.fds) }
}

/// Reads from `fd` with a ``SocketReceiver`` until `byteCount` bytes and `fdCount`
/// descriptors have arrived (or end of file when `untilEndOfFile`), then reads and closes
/// every received descriptor.
func receiveLog(
    from fd: Int32,
    byteCount: Int = 0,
    fdCount: Int = 0,
    untilEndOfFile: Bool = false,
    maxFileDescriptors: Int = SocketIO.defaultMaxFileDescriptorsPerReceive,
    bufferSize: Int = 65_536,
    timeout: Duration = .seconds(30)
) throws -> ReceiveLog {
    var receiver = SocketReceiver(maxFileDescriptors: maxFileDescriptors)
    var queue = FileDescriptorQueue()
    var log = ReceiveLog()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 1)
    defer { buffer.deallocate() }
    while untilEndOfFile || log.bytes.count < byteCount || queue.count < fdCount {
        guard try SocketIO.waitUntilReadable(fd, timeout: timeout) else {
            throw EndpointMuxError.timedOut(operation: "test receive")
        }
        let before = queue.count
        switch try receiver.receive(from: fd, into: buffer, fileDescriptors: &queue) {
        case let .received(n):
            log.bytes.append(contentsOf: buffer[0..<n])
            log.calls.append(.init(bytes: n, fds: queue.count - before))
        case .endOfFile:
            #expect(queue.count == before, "descriptors arrived with end of file")
            log.sawEndOfFile = true
            guard untilEndOfFile else { throw EndpointMuxError.peerClosed }
        case .wouldBlock:
            continue
        }
        if log.sawEndOfFile { break }
    }
    while let owned = queue.popFirst() {
        log.contents.append(contents(of: owned.rawValue))
    }
    return log
}

/// `"fd-0"`, `"fd-1"`, … `"fd-(count-1)"`.
func pipeContents(_ count: Int) -> [String] {
    (0..<count).map { "fd-\($0)" }
}

/// A queue owning `fds`.
func queue(owning fds: [Int32]) -> FileDescriptorQueue {
    var queue = FileDescriptorQueue()
    queue.append(takingRawValues: fds)
    return queue
}
