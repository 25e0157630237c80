import CEchoServer
import Glibc

/// `ready.kvd` (issue 10): how long `kvd` takes from exec until it answers, against
/// `kvd --no-mux` plus one `b3sum` of the kvd binary (the work the mux adds at start-up is
/// hashing the executable for its identity).
///
/// - subject: `kvd --socket P` is spawned and the clock runs until an identity probe
///   (lane 0xB232, random nonce) on P is answered with a RESPONSE frame echoing the nonce:
///   the answer carries the executable's digest, so the hash is done.
/// - baseline: `kvd --socket P --no-mux` spawned, clock until `GET ready` is answered
///   with a line; plus `b3sum <kvd>` (default threads, as a user would run it) spawned and
///   waited for. `b3sum --num-threads 1` is measured and reported too.
///
/// Connection attempts are retried every 0.2 ms. Each round runs the four measurements,
/// alternating their order round by round; medians are reported:
/// `READY kvd <ms> baseline=<ms> ratio=<x>` (ratio = kvd / (no-mux + b3sum); the issue's
/// target is ≤ 2) and `READY-PARTS kvd nomux_ms=… b3sum_ms=… b3sum_threads1_ms=… binary_bytes=…`.
enum ReadyTest {
    static let caseName = "ready.kvd"

    static func run(binaryDirectory: String, directory: String, rounds: Int) throws {
        let kvd = binaryDirectory + "/kvd"
        guard access(kvd, X_OK) == 0 else {
            throw LoadError(
                "no executable \(kvd): run `swift build -c release --product kvd` at the top, or set ENDPOINTMUX_BIN")
        }
        let candidates: [String] = ["/usr/bin/b3sum", "/usr/local/bin/b3sum"]
        guard let b3sum = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw LoadError("b3sum is not installed (apt-get install b3sum)")
        }
        var info = stat()
        let binaryBytes = stat(kvd, &info) == 0 ? Int(info.st_size) : 0
        var withMux: [Double] = [], noMux: [Double] = [], hash: [Double] = [], hashOneThread: [Double] = []
        // One unmeasured pass of each: page cache and dynamic loader warm, as for a restart.
        _ = try timeKVD(kvd, noMux: false, directory: directory, round: -1)
        _ = try timeKVD(kvd, noMux: true, directory: directory, round: -1)
        _ = try timeProcess(b3sum, [kvd])
        for round in 0..<rounds {
            for step in (round % 2 == 0 ? [0, 1, 2, 3] : [3, 2, 1, 0]) {
                switch step {
                case 0: withMux.append(try timeKVD(kvd, noMux: false, directory: directory, round: round))
                case 1: noMux.append(try timeKVD(kvd, noMux: true, directory: directory, round: round))
                case 2: hash.append(try timeProcess(b3sum, [kvd]))
                default: hashOneThread.append(try timeProcess(b3sum, ["--num-threads", "1", kvd]))
                }
            }
        }
        func ms(_ values: [Double]) -> String { values.map { formatted($0) }.joined(separator: " ") }
        note(
            "mux-load: \(caseName): kvd \(ms(withMux)) | kvd --no-mux \(ms(noMux)) | b3sum \(ms(hash)) | b3sum --num-threads 1 \(ms(hashOneThread)) (ms)"
        )
        let subject = median(withMux)
        let baseline = median(noMux) + median(hash)
        print(
            "READY kvd \(formatted(subject)) baseline=\(formatted(baseline)) ratio=\(formatted(baseline > 0 ? subject / baseline : 0))"
        )
        print(
            "READY-PARTS kvd nomux_ms=\(formatted(median(noMux))) b3sum_ms=\(formatted(median(hash))) b3sum_threads1_ms=\(formatted(median(hashOneThread))) binary_bytes=\(binaryBytes)"
        )
        fflush(nil)
    }

    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    /// Milliseconds from spawning kvd until its socket answers (a probe with the mux, a
    /// legacy line without); the process is stopped afterwards (not timed).
    private static func timeKVD(_ kvd: String, noMux: Bool, directory: String, round: Int) throws -> Double {
        let label = "ready-\(noMux ? "nomux" : "mux")-\(round + 1)"
        let path = "\(directory)/\(label).sock"
        unlink(path)
        let start = Clock.now()
        let process = try ServerProcess(
            label: label, executable: kvd,
            arguments: ["--socket", path] + (noMux ? ["--no-mux"] : []),
            logPath: "\(directory)/\(label).log")
        defer { process.stop(); unlink(path) }
        let deadline = start + 30_000_000_000
        var fd: Int32 = -1
        while fd < 0 {
            fd = connectOnce(path)
            if fd >= 0 { break }
            if process.hasExited { throw LoadError("\(label) exited: \(process.log())") }
            if Clock.now() > deadline { throw LoadError("\(label): not connectable after 30 s: \(process.log())") }
            usleep(200)
        }
        defer { close(fd) }
        UnixSocket.setTimeouts(fd, milliseconds: 10_000)
        if noMux {
            let line = Array("GET ready\n".utf8)
            try line.withUnsafeBytes { try UnixSocket.writeAll(fd, $0) }
            var received: [UInt8] = []
            var byte = [UInt8](repeating: 0, count: 256)
            while !received.contains(UInt8(ascii: "\n")) {
                let n = try byte.withUnsafeMutableBytes { try UnixSocket.readSome(fd, into: $0) }
                guard n > 0 else { throw LoadError("\(label): closed before answering") }
                received += byte[..<n]
            }
        } else {
            var nonce = [UInt8](repeating: 0, count: 32)
            for index in nonce.indices { nonce[index] = UInt8.random(in: 0...255) }
            let requestID = nonce.prefix(8).enumerated().reduce(UInt64(0)) {
                $0 | UInt64($1.element) << (8 * UInt64($1.offset))
            }
            let probe = V1.frame(kind: V1.request, lane: 0xB232, payload: nonce, requestID: requestID)
            try probe.withUnsafeBytes { try UnixSocket.writeAll(fd, $0) }
            let header = try UnixSocket.readExactly(fd, count: 5)
            guard header[0] == 0x01 else { throw LoadError("\(label): answer is not a v1 frame") }
            let length = Int(header[1]) | Int(header[2]) << 8 | Int(header[3]) << 16 | Int(header[4]) << 24
            let body = try UnixSocket.readExactly(fd, count: length)
            // RESPONSE (kind 1) on 0xB232 whose payload starts with the nonce.
            let expectedHead: [UInt8] = [0x08, 0x01, 0x10, 0x01, 0x18, 0xB2, 0xE4, 0x02, 0x22]
            guard body.starts(with: expectedHead), let start = body.firstRange(of: nonce)?.lowerBound, start < 16 else {
                throw LoadError("\(label): the answer is not a probe answer echoing the nonce")
            }
        }
        return Double(Clock.now() - start) / 1e6
    }

    /// One non-blocking-free connect attempt; -1 when nothing listens yet.
    private static func connectOnce(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { close(fd); return -1 }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if connected == 0 { return fd }
        close(fd)
        return -1
    }

    /// Milliseconds to run `executable arguments` to completion (output discarded).
    private static func timeProcess(_ executable: String, _ arguments: [String]) throws -> Double {
        let logFD = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(logFD) }
        let argv = ([executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        let start = Clock.now()
        let pid = (argv + [nil]).withUnsafeBufferPointer { cecho_spawn(executable, $0.baseAddress, logFD) }
        guard pid > 0 else { throw LoadError("cannot start \(executable): errno \(errno)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let elapsed = Double(Clock.now() - start) / 1e6
        guard status == 0 else {
            throw LoadError("\(executable) \(arguments.joined(separator: " ")) failed: status \(status)")
        }
        return elapsed
    }
}
