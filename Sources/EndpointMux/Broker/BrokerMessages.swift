/// A listener's id: a number the broker chooses, unique for the broker's lifetime (so
/// another client may name a `pair` listener in `connect`).
public struct BrokerListenerID: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The number on the wire.
    public var rawValue: UInt64
    /// Wraps a number.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    /// The number as text.
    public var description: String { String(rawValue) }
    /// Orders by number.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    init(parsing value: JSONValue, member: String) throws(BrokerDecodeError) {
        guard case let .number(number) = value else { throw .wrongType(member: member, expected: "an integer") }
        guard let raw = number.uint64 else { throw .invalidListenerID(number.text) }
        self.init(raw)
    }

    /// The id as a JSON number.
    @_spi(Internals) public var jsonValue: JSONValue { .number(JSONNumber(rawValue)) }
}

/// What a `connect` connects to.
@_spi(Internals) public enum BrokerConnectTarget: Hashable, Sendable {
    /// A kernel address (`tcp` or `unix`).
    case endpoint(BrokerEndpoint)
    /// A `pair` listener of this broker.
    case listener(BrokerListenerID)
}

/// Why a request's parameters or method were rejected: one case per fault. Answered as
/// −32601 (``unknownMethod(_:)``) or −32602 (everything else), never by closing the
/// connection.
@_spi(Internals) public enum BrokerDecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The method is none of `listen`, `accept`, `connect`, `close`.
    case unknownMethod(String)
    /// `params` is absent or not an object.
    case paramsNotObject
    /// A required member is missing.
    case missingMember(String)
    /// A member has the wrong JSON type.
    case wrongType(member: String, expected: String)
    /// An endpoint `kind` other than `tcp`, `unix`, `pair`.
    case unknownEndpointKind(String)
    /// A TCP host that is not an IPv4 or IPv6 literal.
    case invalidHost(String)
    /// A port outside 0...65535 or not an integer.
    case invalidPort(String)
    /// A Unix path that is not absolute, too long, or has `.`/`..`/empty components.
    case invalidPath(String)
    /// A listener id that is not a non-negative integer.
    case invalidListenerID(String)
    /// A backlog outside 0...65535.
    case invalidBacklog(String)
    /// A timeout outside 0...86,400,000 ms.
    case invalidTimeout(String)
    /// A member that makes no sense here (`connect` with both `endpoint` and `listener`,
    /// `listen` on a kind that cannot listen, …).
    case conflict(String)
    /// `$/cancelRequest` without a usable `id`.
    case invalidCancel

    /// The JSON-RPC error answered for it.
    @_spi(Internals) public var errorObject: JSONRPCErrorObject {
        switch self {
        case let .unknownMethod(method):
            return JSONRPCErrorObject(
                code: JSONRPCErrorObject.methodNotFoundCode, message: "Method not found: \(method)",
                data: ["name": "MethodNotFound", "method": .string(method)])
        default:
            return JSONRPCErrorObject(
                code: JSONRPCErrorObject.invalidParamsCode, message: "Invalid params: \(description)",
                data: ["name": "InvalidParams", "reason": .string(description)])
        }
    }

    @_spi(Internals) public var description: String {
        switch self {
        case let .unknownMethod(method): return "unknown method \"\(method)\""
        case .paramsNotObject: return "params must be an object"
        case let .missingMember(member): return "missing \(member)"
        case let .wrongType(member, expected): return "\(member) must be \(expected)"
        case let .unknownEndpointKind(kind): return "unknown endpoint kind \"\(kind)\" (tcp, unix or pair)"
        case let .invalidHost(host): return "host \"\(host)\" is not an IPv4 or IPv6 literal"
        case let .invalidPort(port): return "port \(port) is not in 0...65535"
        case let .invalidPath(path):
            return "unix path \"\(path)\" must be absolute, at most 107 bytes, without . or .. components"
        case let .invalidListenerID(id): return "listener \(id) is not a listener id"
        case let .invalidBacklog(backlog): return "backlog \(backlog) is not in 0...65535"
        case let .invalidTimeout(timeout): return "timeoutMs \(timeout) is not in 0...86400000"
        case let .conflict(detail): return detail
        case .invalidCancel: return "$/cancelRequest needs params {\"id\": number or string}"
        }
    }
}

/// A broker request, decoded from a JSON-RPC request by a throwing initialiser and
/// encoded back exactly (``method`` and ``params``).
@_spi(Internals) public enum BrokerRequest: Hashable, Sendable {
    /// `listen {"endpoint": E, "backlog"?: n}`.
    case listen(endpoint: BrokerEndpoint, backlog: Int?)
    /// `accept {"listener": id}`.
    case accept(listener: BrokerListenerID)
    /// `connect {"endpoint": E, "timeoutMs"?: n}` or `connect {"listener": id, "timeoutMs"?: n}`.
    case connect(BrokerConnectTarget, timeoutMilliseconds: Int?)
    /// `close {"listener": id}`.
    case close(listener: BrokerListenerID)

    /// The largest `timeoutMs` accepted (one day).
    @_spi(Internals) public static let maxTimeoutMilliseconds = 86_400_000

    /// The method names.
    @_spi(Internals) public static let methods: Set<String> = ["listen", "accept", "connect", "close"]

    /// Decodes `request`: the method picks the case, `params` must be an object with the
    /// members of that case (unknown members are ignored).
    @_spi(Internals) public init(decoding request: ControlRequest) throws(BrokerDecodeError) {
        try self.init(method: request.method, params: request.params)
    }

    /// Decodes a method and its params.
    @_spi(Internals) public init(method: String, params: JSONValue?) throws(BrokerDecodeError) {
        guard Self.methods.contains(method) else { throw .unknownMethod(method) }
        guard case let .object(object)? = params else { throw .paramsNotObject }
        func listener() throws(BrokerDecodeError) -> BrokerListenerID {
            guard let value = object["listener"] else { throw .missingMember("listener") }
            return try BrokerListenerID(parsing: value, member: "listener")
        }
        switch method {
        case "listen":
            guard let endpointValue = object["endpoint"] else { throw .missingMember("endpoint") }
            let endpoint = try BrokerEndpoint(parsing: endpointValue)
            var backlog: Int?
            if let value = object["backlog"], value != .null {
                guard case let .number(number) = value else {
                    throw .wrongType(member: "backlog", expected: "an integer")
                }
                guard let raw = number.int64, (0...65535).contains(raw) else { throw .invalidBacklog(number.text) }
                backlog = Int(raw)
            }
            if object["listener"] != nil { throw .conflict("listen takes an endpoint, not a listener") }
            self = .listen(endpoint: endpoint, backlog: backlog)
        case "accept":
            self = .accept(listener: try listener())
        case "close":
            self = .close(listener: try listener())
        default:  // "connect"
            var timeout: Int?
            if let value = object["timeoutMs"], value != .null {
                guard case let .number(number) = value else {
                    throw .wrongType(member: "timeoutMs", expected: "an integer")
                }
                guard let raw = number.int64, (0...Int64(Self.maxTimeoutMilliseconds)).contains(raw) else {
                    throw .invalidTimeout(number.text)
                }
                timeout = Int(raw)
            }
            switch (object["endpoint"], object["listener"]) {
            case (nil, nil): throw .missingMember("endpoint")
            case (_?, _?): throw .conflict("connect takes an endpoint or a listener, not both")
            case let (endpointValue?, nil):
                let endpoint = try BrokerEndpoint(parsing: endpointValue)
                if endpoint == .pair {
                    throw .conflict("connect to a pair endpoint names its listener: {\"listener\": id}")
                }
                if case let .tcp(_, port) = endpoint, port == 0 { throw .invalidPort("0 (connect needs a port)") }
                self = .connect(.endpoint(endpoint), timeoutMilliseconds: timeout)
            case let (nil, listenerValue?):
                self = .connect(
                    .listener(try BrokerListenerID(parsing: listenerValue, member: "listener")),
                    timeoutMilliseconds: timeout)
            }
        }
    }

    /// The method name.
    @_spi(Internals) public var method: String {
        switch self {
        case .listen: "listen"
        case .accept: "accept"
        case .connect: "connect"
        case .close: "close"
        }
    }

    /// The params object, in the member order of the protocol table.
    @_spi(Internals) public var params: JSONValue {
        switch self {
        case let .listen(endpoint, backlog):
            var object: JSONObject = ["endpoint": endpoint.jsonValue]
            if let backlog { object["backlog"] = .number(JSONNumber(backlog)) }
            return .object(object)
        case let .accept(listener), let .close(listener):
            return ["listener": listener.jsonValue]
        case let .connect(target, timeout):
            var object: JSONObject
            switch target {
            case let .endpoint(endpoint): object = ["endpoint": endpoint.jsonValue]
            case let .listener(listener): object = ["listener": listener.jsonValue]
            }
            if let timeout { object["timeoutMs"] = .number(JSONNumber(timeout)) }
            return .object(object)
        }
    }

    /// The request as a control message with `id`.
    @_spi(Internals) public func controlRequest(id: JSONRPCID) -> ControlRequest {
        ControlRequest(method: method, params: params, id: id)
    }
}

/// The cancellation notification: `{"method":"$/cancelRequest","params":{"id": requestId}}`.
@_spi(Internals) public struct BrokerCancel: Hashable, Sendable {
    /// The notification's method.
    @_spi(Internals) public static let method = "$/cancelRequest"
    /// The id of the request to cancel.
    @_spi(Internals) public var id: JSONRPCID

    /// Names the request to cancel.
    @_spi(Internals) public init(id: JSONRPCID) { self.id = id }

    /// Decodes the notification's params.
    @_spi(Internals) public init(decoding notification: ControlNotification) throws(BrokerDecodeError) {
        guard notification.method == Self.method, case let .object(object)? = notification.params,
            let value = object["id"], let id = JSONRPCID(value), id != .null
        else { throw .invalidCancel }
        self.id = id
    }

    /// The notification.
    @_spi(Internals) public var notification: ControlNotification {
        ControlNotification(method: Self.method, params: ["id": id.jsonValue])
    }
}

/// The errors the broker answers, each with a code and `data` holding at least `name`.
@_spi(Internals) public enum BrokerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// −32602 / −32601: the request did not decode.
    case decode(BrokerDecodeError)
    /// −32001 `PermissionDenied`: the policy has no rule for this; `rule` is the missing
    /// `--allow` rule (or `uid=N` for `--allow-uid N`).
    case permissionDenied(rule: String)
    /// −32002 `UnknownListener`.
    case unknownListener(BrokerListenerID)
    /// −32003 `SystemError`: a system call failed (`name` is the errno's symbol, e.g. `ECONNREFUSED`).
    case system(name: String, errno: Int32, message: String)
    /// −32004 `TimedOut`.
    case timedOut
    /// −32005 `ListenerClosed`: the listener closed while this request waited on it.
    case listenerClosed(BrokerListenerID)
    /// −32006 `LimitExceeded`: too many listeners or waiting requests on this connection.
    case limitExceeded(String)
    /// −32800 `Cancelled` by `$/cancelRequest`.
    case cancelled
    /// −32600 `DuplicateRequestID`: a request with this id is still waiting.
    case duplicateRequestID(JSONRPCID)

    /// Code −32001.
    @_spi(Internals) public static let permissionDeniedCode = -32001
    /// Code −32002.
    @_spi(Internals) public static let unknownListenerCode = -32002
    /// Code −32003.
    @_spi(Internals) public static let systemErrorCode = -32003
    /// Code −32004.
    @_spi(Internals) public static let timedOutCode = -32004
    /// Code −32005.
    @_spi(Internals) public static let listenerClosedCode = -32005
    /// Code −32006.
    @_spi(Internals) public static let limitExceededCode = -32006
    /// Code −32800.
    @_spi(Internals) public static let cancelledCode = -32800

    /// A system error from an errno value (the symbol and `strerror` text).
    @_spi(Internals) public static func system(errno code: Int32) -> Self {
        .system(name: ErrnoName.name(of: code), errno: code, message: ErrnoName.message(of: code))
    }

    /// The JSON-RPC error object.
    @_spi(Internals) public var errorObject: JSONRPCErrorObject {
        switch self {
        case let .decode(error):
            return error.errorObject
        case let .permissionDenied(rule):
            return JSONRPCErrorObject(
                code: Self.permissionDeniedCode, message: description,
                data: ["name": "PermissionDenied", "rule": .string(rule)])
        case let .unknownListener(id):
            return JSONRPCErrorObject(
                code: Self.unknownListenerCode, message: description,
                data: ["name": "UnknownListener", "listener": id.jsonValue])
        case let .system(name, errno, message):
            return JSONRPCErrorObject(
                code: Self.systemErrorCode, message: description,
                data: [
                    "name": .string(name), "errno": .number(JSONNumber(Int(errno))),
                    "message": .string(message),
                ])
        case .timedOut:
            return JSONRPCErrorObject(code: Self.timedOutCode, message: description, data: ["name": "TimedOut"])
        case let .listenerClosed(id):
            return JSONRPCErrorObject(
                code: Self.listenerClosedCode, message: description,
                data: ["name": "ListenerClosed", "listener": id.jsonValue])
        case let .limitExceeded(what):
            return JSONRPCErrorObject(
                code: Self.limitExceededCode, message: description,
                data: ["name": "LimitExceeded", "limit": .string(what)])
        case .cancelled:
            return JSONRPCErrorObject(code: Self.cancelledCode, message: description, data: ["name": "Cancelled"])
        case let .duplicateRequestID(id):
            return JSONRPCErrorObject(
                code: JSONRPCErrorObject.invalidRequestCode, message: description,
                data: ["name": "DuplicateRequestID", "id": id.jsonValue])
        }
    }

    @_spi(Internals) public var description: String {
        switch self {
        case let .decode(error): return error.description
        case let .permissionDenied(rule):
            if rule.hasPrefix("uid=") { return "permission denied: no --allow-uid \(rule.dropFirst(4))" }
            return "permission denied: no --allow \(rule)"
        case let .unknownListener(id): return "unknown listener \(id)"
        case let .system(name, errno, message): return "system error \(name) (\(errno)): \(message)"
        case .timedOut: return "timed out"
        case let .listenerClosed(id): return "listener \(id) closed"
        case let .limitExceeded(what): return "limit exceeded: \(what)"
        case .cancelled: return "cancelled"
        case let .duplicateRequestID(id): return "a request with id \(id) is still waiting"
        }
    }

    /// Reads a broker error back from an error object (for clients); `nil` when the code is
    /// none of the broker's.
    @_spi(Internals) public init?(_ object: JSONRPCErrorObject) {
        let data = object.data
        func listenerID() -> BrokerListenerID {
            BrokerListenerID(data?["listener"]?.numberValue?.uint64 ?? 0)
        }
        switch object.code {
        case Self.permissionDeniedCode: self = .permissionDenied(rule: data?["rule"]?.stringValue ?? "")
        case Self.unknownListenerCode: self = .unknownListener(listenerID())
        case Self.systemErrorCode:
            let code = data?["errno"]?.numberValue?.int64.flatMap { Int32(exactly: $0) } ?? 0
            self = .system(
                name: data?["name"]?.stringValue ?? "", errno: code, message: data?["message"]?.stringValue ?? "")
        case Self.timedOutCode: self = .timedOut
        case Self.listenerClosedCode: self = .listenerClosed(listenerID())
        case Self.limitExceededCode: self = .limitExceeded(data?["limit"]?.stringValue ?? "")
        case Self.cancelledCode: self = .cancelled
        default: return nil
        }
    }
}

/// A broker success result, encoded exactly as the protocol table says.
@_spi(Internals) public enum BrokerResult: Hashable, Sendable {
    /// `listen`: `{"listener": id, "endpoint": E'}` (the bound address).
    case listening(listener: BrokerListenerID, endpoint: BrokerEndpoint)
    /// `accept`: `{"listener": id, "local": E, "peer": E}` with 1 fd.
    case accepted(listener: BrokerListenerID, local: BrokerEndpoint, peer: BrokerEndpoint)
    /// `connect`: `{"local": E, "peer": E}` with 1 fd.
    case connected(local: BrokerEndpoint, peer: BrokerEndpoint)
    /// `close`: `null`.
    case closed

    /// The result value.
    @_spi(Internals) public var jsonValue: JSONValue {
        switch self {
        case let .listening(listener, endpoint):
            return ["listener": listener.jsonValue, "endpoint": endpoint.jsonValue]
        case let .accepted(listener, local, peer):
            return ["listener": listener.jsonValue, "local": local.jsonValue, "peer": peer.jsonValue]
        case let .connected(local, peer):
            return ["local": local.jsonValue, "peer": peer.jsonValue]
        case .closed:
            return .null
        }
    }

    /// How many fds travel with this result.
    @_spi(Internals) public var fileDescriptorCount: Int {
        switch self {
        case .accepted, .connected: 1
        case .listening, .closed: 0
        }
    }

    /// Reads the result of `method` back (for clients).
    @_spi(Internals) public init(parsing value: JSONValue, method: String) throws(BrokerDecodeError) {
        func endpoint(_ member: String) throws(BrokerDecodeError) -> BrokerEndpoint {
            guard let value = value[member] else { throw .missingMember(member) }
            // Peers' unix addresses may be unnamed (empty path): accept them here.
            if case let .object(object) = value, object["kind"] == "unix", case let .string(path)? = object["path"] {
                return .unix(path: path)
            }
            return try BrokerEndpoint(parsing: value, member: member)
        }
        func listener() throws(BrokerDecodeError) -> BrokerListenerID {
            guard let id = value["listener"] else { throw .missingMember("listener") }
            return try BrokerListenerID(parsing: id, member: "listener")
        }
        switch method {
        case "listen": self = .listening(listener: try listener(), endpoint: try endpoint("endpoint"))
        case "accept":
            self = .accepted(listener: try listener(), local: try endpoint("local"), peer: try endpoint("peer"))
        case "connect": self = .connected(local: try endpoint("local"), peer: try endpoint("peer"))
        case "close": self = .closed
        default: throw .unknownMethod(method)
        }
    }
}
