import ArgumentParser
import EndpointMux
import LegacyAdapters

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one v1 REQUEST frame and print the reply payload (or the server's epitaph).")

    @Option(help: "Socket path.") var socket: String
    @Option(help: "Payload protocol, e.g. 0xF0B7.") var lane: PayloadProtocol
    @Option(help: "Payload text.") var payload: String
    @Option(help: "Deadline in milliseconds.") var timeout: Int = 5000

    func run() throws {
        do {
            let client = try FrameClient(socketPath: socket)
            let reply = try client.request(lane: lane, payload: Array(payload.utf8), timeout: .milliseconds(timeout))
            print(String(decoding: reply.payload, as: UTF8.self))
        } catch let ClientError.epitaph(epitaph) {
            print("epitaph: \(epitaph.status) (\(epitaph.status.rawValue)): \(epitaph.reason)")
            throw ExitCode(2)
        } catch {
            printError("muxctl send: \(error)")
            throw ExitCode(1)
        }
    }
}
