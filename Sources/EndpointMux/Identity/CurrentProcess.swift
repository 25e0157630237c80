import Glibc

/// Facts about processes read from the operating system (Linux `/proc`).
package enum ProcessFacts {
    /// The canonical path of `pid`'s executable (`realpath` of `/proc/<pid>/exe`).
    /// - Throws: ``EndpointMuxError/system(operation:path:errno:)``.
    package static func executablePath(of pid: Int32) throws(EndpointMuxError) -> String {
        try canonicalPath("/proc/\(pid)/exe")
    }

    /// `realpath(path)`.
    package static func canonicalPath(_ path: String) throws(EndpointMuxError) -> String {
        guard let resolved = realpath(path, nil) else { throw .system(operation: "realpath", path: path, errno: errno) }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`), or "" where there is none.
    package static func bootID() -> String {
        guard let bytes = try? FileSystem.readFile("/proc/sys/kernel/random/boot_id", limit: 256) else { return "" }
        var text = String(decoding: bytes, as: UTF8.self)
        while text.last?.isWhitespace == true { text.removeLast() }
        return text
    }

    /// Whether a process with `pid` exists (`kill(pid, 0)`; EPERM counts as alive).
    package static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    /// Wall-clock milliseconds since the Unix epoch.
    package static func unixMilliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }
}

extension DaemonIdentity {
    /// The identity of the calling process serving `endpoint`: its pid, canonical
    /// executable path, BLAKE3 of that file, the boot id and the current time.
    ///
    /// The executable is hashed once per process: later calls (more endpoints, a restarted
    /// server) reuse the digest while the file's device, inode, size, modification and
    /// change times are unchanged (see ``ExecutableHashCache``).
    /// - Throws: ``EndpointMuxError`` when the executable cannot be resolved or read.
    package static func current(
        endpoint: IPCEndpoint, idleTimeoutSeconds: UInt32? = nil
    ) throws(EndpointMuxError) -> DaemonIdentity {
        let path = try ProcessFacts.executablePath(of: getpid())
        return DaemonIdentity(
            pid: UInt32(getpid()), executablePath: path, executableHash: try ExecutableHashCache.hash(fileAtPath: path),
            bootID: ProcessFacts.bootID(), endpoint: endpoint,
            startedAtUnixMilliseconds: ProcessFacts.unixMilliseconds(), idleTimeoutSeconds: idleTimeoutSeconds)
    }
}
