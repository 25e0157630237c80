import Glibc

/// Idle-connection memory: many connected clients that send nothing, held open while the
/// server's VmRSS is read before and after; an echo on a further connection must still be
/// answered while they are held. The same is done to the C baseline for comparison.
enum IdleTest {
    struct Result {
        var opened = 0
        var held = 0
        var residentPerConnection = 0.0
        var echoMilliseconds = 0.0
        var limitedBy: String?
    }

    static func run(servers: Servers, requested: Int, limit: Int) throws {
        // Each side holds one fd per connection plus its own few dozen.
        let fitting = max(1, min(requested, limit - 256))
        if fitting < requested {
            note("mux-load: idle: RLIMIT_NOFILE is \(limit); using \(fitting) connections, not \(requested)")
        }
        let mux = try servers.muxctlServe(fresh: true)
        let subject = try measure(
            mux, count: fitting, workload: Workloads.muxEcho(mux, payload: Workloads.smallPayload))
        mux.process.stop()
        let c = try servers.cEcho(lines: false, fresh: true)
        let baseline = try measure(
            c, count: fitting, workload: Workloads.cFrameEcho(c, payload: Workloads.smallPayload))
        c.process.stop()
        var line =
            "IDLE connections=\(subject.opened) rss_per_connection_bytes=\(formatted(subject.residentPerConnection, decimals: 0))"
        line += " held=\(subject.held) echo_while_held_ms=\(formatted(subject.echoMilliseconds))"
        line += " baseline_rss_per_connection_bytes=\(formatted(baseline.residentPerConnection, decimals: 0))"
        if subject.opened < requested { line += " requested=\(requested)" }
        print(line)
        if let reason = subject.limitedBy { note("mux-load: idle: stopped opening at \(subject.opened): \(reason)") }
        guard subject.held == subject.opened else {
            throw LoadError("the server dropped \(subject.opened - subject.held) idle connections")
        }
    }

    static func measure(_ server: RunningServer, count: Int, workload: Workload) throws -> Result {
        var result = Result()
        // Warm: one echo on its own connection, so start-up allocations are in "before".
        close(try LoadGenerator.openVerified(workload))
        Clock.sleep(milliseconds: 200)
        guard let fdsBefore = server.process.openFileDescriptorCount(),
            let residentBefore = server.process.residentBytes()
        else {
            throw LoadError("\(server.process.label): cannot read /proc/\(server.process.pid)")
        }
        var fds: [Int32] = []
        fds.reserveCapacity(count)
        defer { fds.forEach { close($0) } }
        let openDeadline = Clock.now() + 120_000_000_000
        while fds.count < count {
            if fds.count % 500 == 0 && Clock.now() > openDeadline {
                result.limitedBy = "120 s spent connecting"
                break
            }
            do {
                fds.append(try UnixSocket.connect(server.socketPath, timeoutMilliseconds: 5000))
            } catch {
                result.limitedBy = "\(error)"
                break
            }
        }
        result.opened = fds.count
        // Wait (bounded) until the server has accepted them all.
        let acceptDeadline = Clock.now() + 30_000_000_000
        while Clock.now() < acceptDeadline {
            if let now = server.process.openFileDescriptorCount(), now >= fdsBefore + fds.count { break }
            if server.process.hasExited {
                throw LoadError("\(server.process.label) exited while connections were opened")
            }
            Clock.sleep(milliseconds: 20)
        }
        // Still served while they are held?
        let echoStart = Clock.now()
        let probe = try LoadGenerator.openVerified(workload)
        close(probe)
        result.echoMilliseconds = Double(Clock.now() - echoStart) / 1e6
        Clock.sleep(milliseconds: 300)
        guard let residentAfter = server.process.residentBytes() else {
            throw LoadError("\(server.process.label): cannot read VmRSS after connecting")
        }
        result.residentPerConnection = fds.isEmpty ? 0 : Double(residentAfter - residentBefore) / Double(fds.count)
        // Held: nothing to read, no hang-up, on every connection.
        var polled = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        _ = poll(&polled, nfds_t(polled.count), 0)
        result.held = polled.filter { $0.revents == 0 }.count
        note(
            "mux-load: idle \(server.process.label): \(fds.count) connections, VmRSS \(residentBefore / 1024) KiB -> \(residentAfter / 1024) KiB, server fds \(fdsBefore) -> \(server.process.openFileDescriptorCount() ?? -1)"
        )
        return result
    }
}
