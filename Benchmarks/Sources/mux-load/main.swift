// mux-load: end-to-end load on EndpointMux servers beside a same-run C epoll baseline.
// `swift build -c release` at the top first, then `cd Benchmarks && swift run -c release mux-load`.
// See Benchmarks/README.md for the cases, the output lines and the knobs.
import CEchoServer
import Glibc

// Re-executed as the baseline server: `mux-load --c-echo-server frames|lines PATH`.
let arguments = CommandLine.arguments
if arguments.count == 4 && arguments[1] == "--c-echo-server" {
    let mode = arguments[2] == "lines" ? CECHO_MODE_LINES : CECHO_MODE_FRAMES
    _ = cecho_serve(arguments[3], Int32(mode.rawValue))
    note("c echo server on \(arguments[3]): setup failed, errno \(errno)")
    exit(1)
}
exit(MuxLoad.main())

/// One comparison: a subject and its baseline, measured alternately in the same run.
struct LoadCase {
    let name: String
    let connections: Int
    let outstanding: Int
    /// Overrides of the run's warm-up / window (the 16 MiB echo needs a longer window).
    var warmMilliseconds: Int?
    var measureMilliseconds: Int?
    let subject: (Servers) throws -> Workload
    let baseline: (Servers) throws -> Workload
}

enum MuxLoad {
    static let idleCaseName = "idle"
    static let scaleCaseName = "echo.v1.scale.o32"

    static func cases() -> [LoadCase] {
        let payload = Workloads.smallPayload
        var list: [LoadCase] = []
        for (connections, outstanding) in [(1, 1), (1, 32), (8, 1), (8, 32)] {
            list.append(
                LoadCase(
                    name: "echo.v1.c\(connections).o\(outstanding)", connections: connections, outstanding: outstanding,
                    subject: { Workloads.muxEcho(try $0.muxctlServe(), payload: payload) },
                    baseline: { Workloads.cFrameEcho(try $0.cEcho(lines: false), payload: payload) }))
        }
        let big = [UInt8](repeating: 0x5A, count: Workloads.bigPayloadByteCount)
        list.append(
            LoadCase(
                name: "echo.v1.16MiB", connections: 1, outstanding: 1, warmMilliseconds: 300, measureMilliseconds: 1500,
                subject: { Workloads.muxEcho(try $0.muxctlServe(), payload: big) },
                baseline: { Workloads.cFrameEcho(try $0.cEcho(lines: false), payload: big) }))
        list.append(
            LoadCase(
                name: "kvd.legacy.o32", connections: 1, outstanding: 32,
                subject: { Workloads.kvdLegacy(try $0.kvd(noMux: false), label: "kvd (mux, lines)") },
                baseline: { Workloads.kvdLegacy(try $0.kvd(noMux: true), label: "kvd --no-mux") }))
        list.append(
            LoadCase(
                name: "kvd.frames.o32", connections: 1, outstanding: 32,
                subject: { Workloads.kvdFrames(try $0.kvd(noMux: false)) },
                baseline: { Workloads.kvdLegacy(try $0.kvd(noMux: false), label: "kvd (mux, lines)") }))
        list.append(
            LoadCase(
                name: "kvd.nomux.o32", connections: 1, outstanding: 32,
                subject: { Workloads.kvdLegacy(try $0.kvd(noMux: true), label: "kvd --no-mux") },
                baseline: { Workloads.cLineEcho(try $0.cEcho(lines: true)) }))
        return list
    }

    static func main() -> Int32 {
        let started = Clock.now()
        let warm = max(0, Env.int("MUX_LOAD_WARM_MS", default: 200))
        let window = max(100, Env.int("MUX_LOAD_MEASURE_MS", default: 600))
        let rounds = min(max(1, Env.int("MUX_LOAD_ROUNDS", default: 5)), 20)
        let idleCount = min(max(1, Env.int("MUX_LOAD_IDLE_CONNECTIONS", default: 10_000)), 100_000)
        let timeoutSeconds = max(10, Env.int("MUX_LOAD_TIMEOUT_S", default: 300))
        let allCases = cases()
        let knownNames = allCases.map(\.name) + [scaleCaseName, ReadyTest.caseName, idleCaseName]
        let selected: Set<String>
        if let list = Env.string("MUX_LOAD_CASES") {
            selected = Set(list.split(separator: ",").map { String($0).trimmingSpaces() })
            let unknown = selected.subtracting(knownNames)
            guard unknown.isEmpty else {
                note(
                    "mux-load: unknown case(s) \(unknown.sorted().joined(separator: ",")); known: \(knownNames.joined(separator: ","))"
                )
                return 2
            }
        } else {
            selected = Set(knownNames)
        }

        // Placement: MUX_LOAD_CPUS=0 pins this process, its threads and its servers to CPU 0
        // (CPU cost per request); unset leaves them free (adds cross-CPU wake-up latency).
        var pinned = "no"
        if let cpus = Env.string("MUX_LOAD_CPUS") {
            let list = cpus.split(separator: ",").compactMap { Int32($0) }
            guard !list.isEmpty,
                list.withUnsafeBufferPointer({ cecho_set_affinity($0.baseAddress, Int32($0.count)) }) == 0
            else {
                note("mux-load: cannot pin to CPUs \(cpus)")
                return 2
            }
            pinned = cpus
        }

        // Descriptors for the idle test, for us and (inherited) for every server we start.
        var soft: UInt = 0
        var hard: UInt = 0
        _ = cecho_raise_nofile(UInt(idleCount + 1024), &soft, &hard)

        let binaryDirectory = resolvedPath(Env.string("ENDPOINTMUX_BIN") ?? "../.build/release")
        let selfExecutable = resolvedPath("/proc/self/exe")
        var template = Array("/tmp/mux-load.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            note("mux-load: mkdtemp failed: errno \(errno)")
            return 2
        }
        let directory = String(cString: made)
        _ = mkdir(directory + "/runtime", 0o700)

        // Ctrl-C / SIGTERM / SIGHUP: stop the servers and remove the directory, then exit.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&stopSignals, signal) }
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)  // before any thread: only the waiter sees them
        let waitSet = stopSignals
        _ = try? JoinableThread {
            var set = waitSet
            var received: Int32 = 0
            guard sigwait(&set, &received) == 0 else { return }
            note("mux-load: signal \(received): stopping the servers")
            Children.shared.stopAll()
            runQuietly("/bin/rm", ["-rf", directory])
            _exit(128 + received)
        }
        let deadline = Clock.now() + UInt64(timeoutSeconds) * 1_000_000_000
        _ = try? JoinableThread {
            while Clock.now() < deadline { Clock.sleep(milliseconds: 100) }
            note("mux-load: watchdog: still running after \(timeoutSeconds) s; killing the servers")
            Children.shared.stopAll()
            runQuietly("/bin/rm", ["-rf", directory])
            _exit(3)
        }

        note(
            "mux-load: servers from \(binaryDirectory); rounds=\(rounds) warm=\(warm)ms window=\(window)ms pinned=\(pinned) nofile=\(soft)/\(hard) dir=\(directory)"
        )
        let servers = Servers(binaryDirectory: binaryDirectory, selfExecutable: selfExecutable, directory: directory)
        var failures = 0
        var printed = 0
        var results: [String: Double] = [:]
        for loadCase in allCases where selected.contains(loadCase.name) {
            if Children.shared.isStopping { break }
            do {
                let (subject, baseline) = try run(
                    loadCase, servers: servers, rounds: rounds,
                    warm: loadCase.warmMilliseconds ?? warm,
                    window: loadCase.measureMilliseconds ?? window)
                results[loadCase.name] = subject.requestsPerSecond
                emit(loadCase.name, subject.requestsPerSecond, baseline.requestsPerSecond)
                if let a = subject.serverMicrosecondsPerRequest, let b = baseline.serverMicrosecondsPerRequest {
                    print("CPU \(loadCase.name) server_us_per_req=\(formatted(a)) baseline_us_per_req=\(formatted(b))")
                }
            } catch {
                failures += 1
                note("mux-load: \(loadCase.name) failed: \(error)")
                print("LOAD \(loadCase.name) 0 baseline=0 ratio=0 failed")
            }
            printed += 1
            fflush(nil)
        }
        if selected.contains(scaleCaseName) {
            // Derived: the mux server's own scaling from 1 to 8 connections at 32 outstanding.
            if let eight = results["echo.v1.c8.o32"], let one = results["echo.v1.c1.o32"] {
                emit(scaleCaseName, eight, one)
                printed += 1
            } else {
                note("mux-load: \(scaleCaseName) needs echo.v1.c1.o32 and echo.v1.c8.o32 in the same run")
            }
        }
        if selected.contains(ReadyTest.caseName) && !Children.shared.isStopping {
            do {
                try ReadyTest.run(binaryDirectory: binaryDirectory, directory: directory, rounds: 2 * rounds + 1)
            } catch {
                failures += 1
                note("mux-load: \(ReadyTest.caseName) failed: \(error)")
                print("READY kvd 0 baseline=0 ratio=0 failed")
            }
            printed += 1
            fflush(nil)
        }
        if selected.contains(idleCaseName) && !Children.shared.isStopping {
            do {
                try IdleTest.run(servers: servers, requested: idleCount, limit: Int(soft))
            } catch {
                failures += 1
                note("mux-load: idle failed: \(error)")
                print("IDLE connections=0 rss_per_connection_bytes=0 failed")
            }
            printed += 1
            fflush(nil)
        }
        if Children.shared.isStopping {
            // The signal or watchdog thread is stopping the servers and will exit the process.
            Clock.sleep(milliseconds: 10_000)
            return 1
        }
        servers.stopAll()
        runQuietly("/bin/rm", ["-rf", directory])
        let seconds = Double(Clock.now() - started) / 1e9
        print("SUMMARY cases=\(printed) failed=\(failures) seconds=\(formatted(seconds, decimals: 1))")
        fflush(nil)
        return failures == 0 ? 0 : 1
    }

    static func emit(_ name: String, _ value: Double, _ baseline: Double) {
        let ratio = baseline > 0 ? value / baseline : 0
        print(
            "LOAD \(name) \(formatted(value, decimals: 0)) baseline=\(formatted(baseline, decimals: 0)) ratio=\(formatted(ratio))"
        )
        fflush(nil)
    }

    /// Measures subject and baseline `rounds` times each, alternating which goes first;
    /// reports the medians.
    static func run(
        _ loadCase: LoadCase, servers: Servers, rounds: Int, warm: Int, window: Int
    )
        throws -> (Measurement, Measurement)
    {
        let subject = try loadCase.subject(servers)
        let baseline = try loadCase.baseline(servers)
        var subjectRuns: [Measurement] = []
        var baselineRuns: [Measurement] = []
        for round in 0..<rounds {
            for takeSubject in (round % 2 == 0 ? [true, false] : [false, true]) {
                let measurement = try LoadGenerator.measure(
                    takeSubject ? subject : baseline, connections: loadCase.connections,
                    outstanding: loadCase.outstanding,
                    warmMilliseconds: warm, measureMilliseconds: window)
                if takeSubject { subjectRuns.append(measurement) } else { baselineRuns.append(measurement) }
            }
        }
        note(
            "mux-load: \(loadCase.name): \(subject.server) \(subjectRuns.map { formatted($0.requestsPerSecond, decimals: 0) }.joined(separator: " ")) | \(baseline.server) \(baselineRuns.map { formatted($0.requestsPerSecond, decimals: 0) }.joined(separator: " "))"
        )
        return (median(subjectRuns), median(baselineRuns))
    }

    static func median(_ runs: [Measurement]) -> Measurement {
        let rates = runs.map(\.requestsPerSecond).sorted()
        let cpu = runs.compactMap(\.serverMicrosecondsPerRequest).sorted()
        return Measurement(
            requestsPerSecond: rates[rates.count / 2],
            serverMicrosecondsPerRequest: cpu.isEmpty ? nil : cpu[cpu.count / 2])
    }

    static func resolvedPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

extension String {
    func trimmingSpaces() -> String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
