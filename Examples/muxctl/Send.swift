import ArgumentParser
@_spi(Internals) import EndpointMux
import LegacyAdapters

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one v1 REQUEST frame and print the reply payload (or the server's epitaph).",
        discussion: MuxctlExit.summary)

    @Option(help: "Socket path.") var socket: String
    @Option(help: "Payload protocol, e.g. 0xF0B7.") var lane: PayloadProtocol
    @Option(help: "Payload text.") var payload: String
    @Option(help: "Deadline for connect, write and read, in milliseconds.") var timeout: Int = 5000

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let deadline = ContinuousClock.now + .milliseconds(timeout)
        do {
            let client = try FrameClient(socketPath: socket, connectDeadline: deadline)
            let reply = try client.request(lane: lane, payload: Array(payload.utf8), deadline: deadline)
            print(String(decoding: reply.payload, as: UTF8.self))
        } catch let error where error.epitaph != nil {
            let epitaph = error.epitaph ?? Epitaph(status: .internal, reason: error.reason)
            print("epitaph: \(epitaph.status) (\(epitaph.status.rawValue)): \(epitaph.reason)")
            throw ExitCode(MuxctlExit.closed)
        } catch {
            printError("muxctl send: \(error)")
            throw ExitCode(MuxctlExit.code(for: error))
        }
    }
}
