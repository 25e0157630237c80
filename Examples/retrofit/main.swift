// The README's retrofit example, compiled with the package so it cannot rot
// (a test checks the README shows exactly the lines between the snippet markers).
// It is a complete, if tiny, daemon: `retrofit-example /tmp/demo.sock` serves an
// "upper-case echo" line protocol, and with EndpointMux also probes, frames on lane
// 0xF0B7 and JSON-FD control.
import EndpointMux
import LegacyAdapters
import Glibc

/// The daemon's old protocol, untouched: one line in, the line upper-cased out.
func oldProtocolReply(_ line: [UInt8]) -> [UInt8] { Array(String(decoding: line, as: UTF8.self).uppercased().utf8) }

/// The daemon's own socket and loop, as before (error handling trimmed for the example).
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

let socketPath = CommandLine.arguments.dropFirst().first ?? "/tmp/retrofit-example.sock"
let listener = listen(socketPath)

// snippet:begin
// Once per daemon: who we are, what we serve, how to recognise our old protocol.
let identity = try DaemonIdentity.current(endpoint: IPCEndpoint(namespaceID: "mydaemon", path: socketPath))
let mux = EndpointMux(identity: identity, servedProtocols: [0xF0B7], legacyDetector: .lineBased())
let options = ConnectionOptions(
    legacyMode: .perMessage { bytes in
        bytes.firstIndex(of: UInt8(ascii: "\n")).map { .complete($0 + 1) } ?? .needMoreBytes
    })

/// Per accepted connection: the daemon keeps its fd and its loop; the driver borrows the fd.
/// Poll on the driver's interest, make one call, answer the events: nothing else to remember.
func serve(_ fd: Int32) {
    let driver = ConnectionDriver(borrowing: fd, mux: mux, options: options)
    while !driver.isClosed {
        var pollFD = pollfd(fd: fd, events: driver.interest.pollEvents, revents: 0)
        _ = poll(&pollFD, 1, driver.interest.pollTimeout(now: .now))
        driver.handle(revents: pollFD.revents) { event in  // probes are answered inside
            switch event {
            case let .legacyMessage(line):  // the old protocol, as before
                driver.send(bytes: oldProtocolReply(Array(line.dropLast())) + [0x0A])
            case let .payload(frame):  // v1 frames on lane 0xF0B7
                try? driver.send(frame.response(payload: oldProtocolReply(frame.payload)))
            case let .control(message):  // JSON-RPC with fds; untaken fds are closed
                if case let .request(request) = message.message {
                    driver.send(
                        .response(
                            ControlResponse(id: request.id, result: .number(JSONNumber(message.fileDescriptorCount)))))
                }
            case .legacyTakeover, .closed:
                break
            }
        }  // answers are written before it returns
    }
    close(fd)
}
// snippet:end

print("retrofit-example: serving \(socketPath)")
while true {
    let fd = accept(listener, nil, nil)
    if fd >= 0 { serve(fd) }
}
