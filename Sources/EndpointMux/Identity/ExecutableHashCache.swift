import Glibc

/// BLAKE3 digests of files hashed by this process, keyed by what identifies one version of
/// a file: device, inode, size, modification time and change time (nanoseconds).
///
/// ``DaemonIdentity/current(endpoint:idleTimeoutSeconds:)`` hashes the executable through
/// this cache, so a process that builds its identity more than once (several endpoints, a
/// server restarted in-process, tests) reads and hashes the file once. The file is opened
/// once and `fstat`ed before and after hashing; a digest is stored only when both agree, so
/// a file replaced or rewritten while it was read is never cached under the old key. A
/// file written in place gets a new change time (which user space cannot set back), so it
/// is hashed again. Nothing is written to disk.
package enum ExecutableHashCache {
    struct Key: Hashable {
        var device: UInt64, inode: UInt64, size: Int64
        var modified: Int64, modifiedNanoseconds: Int64, changed: Int64, changedNanoseconds: Int64
    }

    nonisolated(unsafe) private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
        return lock
    }()
    nonisolated(unsafe) private static var digests: [Key: [UInt8]] = [:]

    /// The BLAKE3 digest of the file at `path`, from the cache when this version of the
    /// file was hashed before by this process.
    /// - Throws: ``EndpointMuxError/system(operation:path:errno:)`` (`open`, `fstat`, `read`).
    package static func hash(fileAtPath path: String) throws(EndpointMuxError) -> [UInt8] {
        var descriptor: Int32
        repeat {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
        } while descriptor < 0 && errno == EINTR
        guard descriptor >= 0 else { throw .system(operation: "open", path: path, errno: errno) }
        defer { _ = close(descriptor) }
        let before = try key(descriptor, path: path)
        if let digest = withLock({ digests[before] }) { return digest }
        let digest = try BLAKE3.hash(fileDescriptor: descriptor, path: path)
        if try key(descriptor, path: path) == before {
            withLock { digests[before] = digest }
        }
        return digest
    }

    /// Whether the file at `path`, as it is now, has a digest in the cache.
    package static func contains(fileAtPath path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        let key = key(info)
        return withLock { digests[key] != nil }
    }

    /// Forgets every digest.
    package static func removeAll() {
        withLock { digests.removeAll() }
    }

    private static func key(_ descriptor: Int32, path: String) throws(EndpointMuxError) -> Key {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .system(operation: "fstat", path: path, errno: errno) }
        return key(info)
    }

    private static func key(_ info: stat) -> Key {
        let modified = info.st_mtim, changed = info.st_ctim
        return Key(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modified: Int64(modified.tv_sec), modifiedNanoseconds: Int64(modified.tv_nsec),
            changed: Int64(changed.tv_sec), changedNanoseconds: Int64(changed.tv_nsec))
    }

    private static func withLock<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return body()
    }
}
