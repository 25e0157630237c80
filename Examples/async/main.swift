// The README's and the "Choosing an adapter" article's AsyncConnection example, compiled
// with the package (a test keeps the copies identical to the lines between the markers).
// `async-example SOCKET` serves an echo daemon; `async-example --self-test` serves a
// temporary socket, probes it and sends one frame, prints OK and exits.
import EndpointMux
import LegacyAdapters
import Glibc

/// The daemon's own listening socket (error handling trimmed for the example).
func listen(_ path: String) -> Int32 {
    unlink(path)
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8).prefix(100)) }
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    _ = Glibc.listen(fd, 16)
    return fd
}

let selfTest = CommandLine.arguments.contains("--self-test")
let socketPath =
    selfTest
    ? "/tmp/async-example-\(getpid()).sock" : CommandLine.arguments.dropFirst().first ?? "/tmp/async-example.sock"
let listener = listen(socketPath)

// snippet:begin async
let identity = try DaemonIdentity.current(endpoint: IPCEndpoint(namespaceID: "mydaemon", path: socketPath))
let mux = EndpointMux(identity: identity, servedProtocols: [0xF0B7])

/// Per accepted connection: the connection takes the fd (and closes it when it ends); it is
/// served on the library's shared epoll loops, and its events arrive as an AsyncSequence.
func serve(_ fd: Int32) async throws {
    let connection = try AsyncConnection(taking: OwnedFileDescriptor(taking: fd), mux: mux)
    for await event in connection.events {  // probes are answered inside
        switch event {
        case let .payload(frame) where frame.kind == .request:
            try connection.send(frame.response(payload: frame.payload))
        case let .control(received):  // JSON-RPC, with the fds it carried
            guard case let .request(request) = received.message else { break }
            let fds = received.takeFileDescriptors()  // ours now: closed when `fds` goes away
            connection.send(OutgoingControlMessage(replyingTo: request, result: .number(JSONNumber(fds.count))))
        default:  // .closed ends the sequence
            break
        }
    }  // leaving the loop ends the connection
}
// snippet:end

if selfTest {
    Task.detached {
        let verified = try ProbeClient.probe(socketPath: socketPath, timeout: .seconds(10))
        let reply = try FrameClient(socketPath: socketPath).request(lane: 0xF0B7, payload: Array("ping".utf8))
        var passed = FileDescriptorQueue()  // two fds passed with a control request: the answer counts them
        passed.append(OwnedFileDescriptor(taking: open("/dev/null", O_RDONLY)))
        passed.append(OwnedFileDescriptor(taking: open("/dev/null", O_RDONLY)))
        let answer = try await ControlClient(socketPath: socketPath).call("count", fileDescriptors: passed)
        let counted = answer.response.outcome == .result(.number(JSONNumber(2)))
        print(
            "async-example: \(counted ? "OK" : "FAILED"), pid \(verified.identity.pid),",
            "echo \(String(decoding: reply.payload, as: UTF8.self)), fds counted: \(answer.response.outcome)")
        unlink(socketPath)
        exit(reply.payload == Array("ping".utf8) && counted ? 0 : 1)
    }
} else {
    print("async-example: serving \(socketPath)")
}
while true {
    let fd = accept(listener, nil, nil)
    if fd >= 0 { Task.detached { try? await serve(fd) } }
}
