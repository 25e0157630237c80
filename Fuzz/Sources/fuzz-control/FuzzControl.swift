@_spi(Internals) import EndpointMux
import Glibc

/// Control-path fuzzing: the first byte picks a split stride; feeding the input whole and
/// in pieces through a MuxSession must give the same verdicts (or the same error class),
/// and nothing may crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let stride = Int(data[0] % 17) + 1
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let identity = DaemonIdentity(pid: 1, executablePath: "/x", executableHash: [UInt8](repeating: 0, count: 32),
                                  bootID: "", endpoint: IPCEndpoint(namespaceID: "n", path: "/p"), startedAtUnixMilliseconds: 1)
    let limits = MuxLimits(control: ControlLimits(maxMessageBytes: 4096, maxDepth: 16, maxFileDescriptorsPerMessage: 8))
    let mux = EndpointMux(identity: identity, servedProtocols: [0x7A63], limits: limits)
    func run(_ step: Int) -> [String] {
        var session = MuxSession(mux: mux)
        var buffer: [UInt8] = []
        var fed = 0
        var log: [String] = []
        while true {
            let verdict: MuxVerdict
            do {
                verdict = try buffer.withUnsafeBytes { (raw) throws(MuxError) in
                    try session.poll(raw, queuedFileDescriptors: 8, endOfInput: fed == input.count)
                }
            } catch {
                log.append("error")
                return log
            }
            switch verdict {
            case .needMoreBytes, .needMoreFileDescriptors:
                guard fed < input.count else { log.append("stalled"); return log }
                let next = min(input.count, fed + step)
                buffer += input[fed..<next]
                fed = next
            case .endOfStream, .legacy:
                log.append("\(verdict)")
                return log
            case let .control(message, fds, consumed):
                log.append("control \(message) \(fds)")
                buffer.removeFirst(consumed)
            case let .invalidControl(_, _, fds, consumed):
                log.append("invalid \(fds)")
                buffer.removeFirst(consumed)
            case let .payload(view, consumed):
                log.append("payload \(view.requestID)")
                buffer.removeFirst(consumed)
            case let .probeAnswered(_, consumed):
                log.append("probe")
                buffer.removeFirst(consumed)
            }
        }
    }
    let whole = run(input.count)
    let split = run(stride)
    if whole != split {
        print("SPLIT DISAGREEMENT stride \(stride): whole \(whole) split \(split) input \(input)")
        abort()
    }
    return 0
}
