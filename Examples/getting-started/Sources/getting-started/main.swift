// The README's getting-started example, built as a package of its own that depends on the
// SDK by path (`scripts/getting-started.sh` builds and runs it; a test keeps the README's
// and the Getting Started article's copies identical to the lines between the markers).
// It starts a service, then checks it as a client would, prints OK and exits 0.
import EndpointMux
import LegacyAdapters
import Glibc

// snippet:begin getting-started
// A directory only this user can enter (mode 0700): whoever can connect to the socket can
// probe it, and a probe answer discloses the pid, executable path and hash, and boot id.
var template = Array("/tmp/getting-started-XXXXXX".utf8CString)
guard let made = mkdtemp(&template) else { fatalError("mkdtemp: errno \(errno)") }
let socketPath = String(cString: made) + "/echo.sock"

// The service: binds the socket, answers identity probes and echoes v1 frames on lane 0xF0B7.
let server = try ServiceServer(
    name: "echo", socketPath: socketPath, identityPath: nil, servedProtocols: [0xF0B7],
    handler: { frame in frame.payload })

// A client: the probe proves which process serves the socket; then one request.
let verified = try ProbeClient.probe(socketPath: socketPath, timeout: .seconds(10))
let client = try FrameClient(socketPath: socketPath)
let reply = try client.request(lane: 0xF0B7, payload: Array("hello".utf8))
print(
    "OK: pid \(verified.identity.pid) (\(verified.identity.executablePath)) echoed",
    String(decoding: reply.payload, as: UTF8.self))

server.stop()  // connected clients get an UNAVAILABLE epitaph; the socket file is removed
rmdir(made)
// snippet:end
