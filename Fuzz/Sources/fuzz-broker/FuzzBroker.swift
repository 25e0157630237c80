@_spi(Internals) import EndpointMux
import Glibc

/// Broker request decoding: any bytes are parsed as JSON, classified as a control message,
/// and decoded as a broker request (or a `$/cancelRequest`). Every input must decode or end
/// in a typed error, never crash; what decodes must encode back to a value that decodes to
/// the same request, and every error must carry `data.name`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let value = try? JSONValue(parsing: bytes, limits: JSONLimits(maxDepth: 32)) else { return 0 }
    // Also try the input as an endpoint object and as a params object of each method.
    if case .object = value {
        _ = try? BrokerEndpoint(parsing: value)
        for method in ["listen", "accept", "connect", "close"] { check(method: method, params: value) }
    }
    guard let message = try? ControlMessage(parsing: value) else { return 0 }
    switch message {
    case let .request(request):
        check(method: request.method, params: request.params)
    case let .notification(notification):
        if let cancel = try? BrokerCancel(decoding: notification) {
            guard (try? BrokerCancel(decoding: cancel.notification)) == cancel else { fail("cancel round trip") }
        }
    case .response:
        break
    }
    return 0
}

private func check(method: String, params: JSONValue?) {
    do throws(BrokerDecodeError) {
        let request = try BrokerRequest(method: method, params: params)
        let again: BrokerRequest
        do throws(BrokerDecodeError) {
            again = try BrokerRequest(method: request.method, params: request.params)
        } catch {
            fail("re-decoding \(request) failed: \(error)")
        }
        guard again == request else { fail("round trip: \(request) became \(again)") }
        // The encoded params are what the wire carries: parse them back from text too.
        let text = request.params.serialized()
        guard let reparsed = try? JSONValue(parsing: String(decoding: text, as: UTF8.self)),
            (try? BrokerRequest(method: method, params: reparsed)) == request
        else { fail("text round trip of \(request)") }
    } catch {
        let object = BrokerError.decode(error).errorObject
        guard object.code == -32602 || object.code == -32601, object.data?["name"]?.stringValue != nil else {
            fail("error without code or name: \(error)")
        }
    }
}

private func fail(_ message: String) -> Never {
    print("BROKER FUZZ FAILURE: \(message)")
    abort()
}
