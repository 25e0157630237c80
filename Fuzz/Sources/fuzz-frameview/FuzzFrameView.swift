@_spi(Internals) import EndpointMux
import Glibc

/// Differential fuzzing: the zero-copy FrameView and libprotobuf-c (Frame(parsingBody:))
/// must both reject a body or both accept it with the same fields; the mux must never
/// crash on a framed body.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = UnsafeRawBufferPointer(start: data, count: size)
    let viaC = try? Frame(parsingBody: body)
    let viaView = (try? FrameView(parsingBodyIn: body, range: 0..<size)).map { $0.frame(in: body) }
    if viaC != viaView {
        print("DISAGREEMENT on \(Array(body)): libprotobuf-c \(String(describing: viaC)) FrameView \(String(describing: viaView))")
        abort()
    }
    let identity = DaemonIdentity(pid: 1, executablePath: "/x", executableHash: [UInt8](repeating: 0, count: 32),
                                  bootID: "", endpoint: IPCEndpoint(namespaceID: "n", path: "/p"), startedAtUnixMilliseconds: 1)
    let mux = EndpointMux(identity: identity, servedProtocols: [0x7A63, 0xF0B7])
    let framed = [0x01, UInt8(size & 0xFF), UInt8(size >> 8 & 0xFF), UInt8(size >> 16 & 0xFF), UInt8(size >> 24 & 0xFF)]
        + Array(body)
    _ = try? mux.poll(framed)
    return 0
}
