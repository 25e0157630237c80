import ArgumentParser
@_spi(Internals) import EndpointMux
import LegacyAdapters
import Glibc

struct Control: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one JSON-FD control request, print the response and the fds it returned.",
        discussion: """
            Files passed with --fd (opened read-only), --fd-write (write-only, created or \
            truncated, mode 0644) and --fd-rw (read-write, created if missing) travel with the \
            request in the order given on the command line. The response is printed as one \
            JSON line, then the first 64 bytes of each returned fd.

            \(MuxctlExit.summary)
            """)

    @Option(help: "Socket path.") var socket: String
    @Argument(help: "Method name.") var method: String
    @Option(help: "Params as JSON.") var params: String?
    @Option(name: .customLong("fd"), help: "A file to open read-only and pass with the request (repeatable).")
    var readFiles: [String] = []
    @Option(name: .customLong("fd-write"), help: "A file to create or truncate, open write-only and pass (repeatable).")
    var writeFiles: [String] = []
    @Option(name: .customLong("fd-rw"), help: "A file to open read-write (created if missing) and pass (repeatable).")
    var readWriteFiles: [String] = []
    @Option(name: .customLong("max-fds"), help: "The most fds the response may carry.")
    var maxFileDescriptors: Int = 1024
    @Option(help: "Deadline for connect, send and the response, in milliseconds.") var timeout: Int = 10_000

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard maxFileDescriptors >= 0 else { throw ValidationError("--max-fds must be 0 or more") }
    }

    func run() throws {
        let deadline = ContinuousClock.now + .milliseconds(timeout)
        var parameters: JSONValue?
        if let params {
            do { parameters = try JSONValue(parsing: params) } catch {
                throw ValidationError("--params is not JSON: \(error)")
            }
        }
        var descriptors = FileDescriptorQueue()
        for file in orderedFiles() {
            let fd = open(file.path, file.mode.flags, 0o644)
            guard fd >= 0 else {
                printError("muxctl control: cannot open \(file.path): \(String(cString: strerror(errno)))")
                throw ExitCode(MuxctlExit.failed)
            }
            descriptors.append(OwnedFileDescriptor(taking: fd))
        }
        raiseFileLimit(toHold: maxFileDescriptors)
        let reply: ControlReply
        do {
            let client = try ControlClient(
                socketPath: socket, limits: ControlLimits(maxFileDescriptorsPerMessage: maxFileDescriptors),
                connectDeadline: deadline)
            reply = try client.call(method, params: parameters, fileDescriptors: descriptors, deadline: deadline)
        } catch {
            printError("muxctl control: \(error)")
            throw ExitCode(MuxctlExit.code(for: error))
        }
        print(
            String(
                decoding: ControlMessage.response(reply.response).encoded(
                    fileDescriptorCount: reply.fileDescriptorCount), as: UTF8.self))
        var received = reply.takeFileDescriptors()
        var index = 0
        while let fd = received.popFirst() {
            let content = String(decoding: readToEnd(fd.rawValue).prefix(64), as: UTF8.self)
            print("fd[\(index)]: \(content)")
            index += 1
        }
        if case let .error(error) = reply.response.outcome {
            printError("muxctl control: error answer \(error.code): \(error.message)")
            throw ExitCode(MuxctlExit.errorAnswer)
        }
    }

    /// How a passed file is opened.
    enum Mode {
        case read, write, readWrite
        var flags: Int32 {
            switch self {
            case .read: O_RDONLY | O_CLOEXEC
            case .write: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC
            case .readWrite: O_RDWR | O_CREAT | O_CLOEXEC
            }
        }
    }

    /// The files of `--fd`, `--fd-write` and `--fd-rw` in command-line order.
    ///
    /// ArgumentParser keeps one array per option, so the interleaving is read back from
    /// the raw arguments (`--fd FILE` and `--fd=FILE` forms, up to `--`); if that reading
    /// does not agree with the parsed arrays, the arrays are used in the order read, write,
    /// read-write.
    func orderedFiles() -> [(path: String, mode: Mode)] {
        let options: [String: Mode] = ["--fd": .read, "--fd-write": .write, "--fd-rw": .readWrite]
        var ordered: [(path: String, mode: Mode)] = []
        let arguments = Array(CommandLine.arguments.dropFirst())
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" { break }
            if let mode = options[argument], index + 1 < arguments.count {
                ordered.append((arguments[index + 1], mode))
                index += 2
                continue
            }
            if let equals = argument.firstIndex(of: "="), let mode = options[String(argument[..<equals])] {
                ordered.append((String(argument[argument.index(after: equals)...]), mode))
            }
            index += 1
        }
        let parsed =
            readFiles.map { ($0, Mode.read) } + writeFiles.map { ($0, Mode.write) }
            + readWriteFiles.map { ($0, Mode.readWrite) }
        let agrees =
            ordered.count == parsed.count
            && ordered.filter { $0.mode == .read }.map(\.path) == readFiles
            && ordered.filter { $0.mode == .write }.map(\.path) == writeFiles
            && ordered.filter { $0.mode == .readWrite }.map(\.path) == readWriteFiles
        return agrees ? ordered : parsed.map { (path: $0.0, mode: $0.1) }
    }

    /// Raises the soft `RLIMIT_NOFILE` (up to the hard limit) so `count` received fds fit.
    func raiseFileLimit(toHold count: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let wanted = rlim_t(clamping: count + 64)
        guard limit.rlim_cur < wanted else { return }
        limit.rlim_cur = min(wanted, limit.rlim_max)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
