import ArgumentParser
import EndpointMux
import LegacyAdapters
#if canImport(Glibc)
import Glibc
#endif

struct Control: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one JSON-FD control request, print the response and the fds it returned.")

    @Option(help: "Socket path.") var socket: String
    @Argument(help: "Method name.") var method: String
    @Option(help: "Params as JSON.") var params: String?
    @Option(name: .customLong("fd"), help: "A file to open and pass with the request (repeatable).") var files: [String] = []
    @Option(help: "Deadline in milliseconds.") var timeout: Int = 10_000

    func run() throws {
        var parameters: JSONValue?
        if let params {
            do { parameters = try JSONValue(parsing: params) } catch { throw ValidationError("--params is not JSON: \(error)") }
        }
        var descriptors = FileDescriptorQueue()
        for file in files {
            let fd = open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ValidationError("cannot open \(file): \(String(cString: strerror(errno)))") }
            descriptors.append(OwnedFileDescriptor(taking: fd))
        }
        do {
            let client = try ControlClient(socketPath: socket)
            let reply = try client.call(method, params: parameters, fileDescriptors: descriptors, timeout: .milliseconds(timeout))
            print(String(decoding: ControlMessage.response(reply.response).encoded(fileDescriptorCount: reply.fileDescriptorCount), as: UTF8.self))
            var received = reply.takeFileDescriptors()
            var index = 0
            while let fd = received.popFirst() {
                let content = String(decoding: readToEnd(fd.rawValue).prefix(64), as: UTF8.self)
                print("fd[\(index)]: \(content)")
                index += 1
            }
        } catch {
            printError("muxctl control: \(error)")
            throw ExitCode(1)
        }
    }
}
