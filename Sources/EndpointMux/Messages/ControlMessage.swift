/// A JSON-RPC request id: a number (exact text), a string or `null`.
public enum JSONRPCID: Hashable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral,
    ExpressibleByStringLiteral
{
    /// A numeric id, kept as written (e.g. `12345678901234567890` round-trips).
    case number(JSONNumber)
    /// A string id.
    case string(String)
    /// The `null` id.
    case null

    /// The id `value` holds; `nil` for a bool, array or object.
    package init?(_ value: JSONValue) {
        switch value {
        case let .number(number): self = .number(number)
        case let .string(string): self = .string(string)
        case .null: self = .null
        case .bool, .array, .object: return nil
        }
    }

    /// A numeric id.
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    /// A string id.
    public init(stringLiteral value: String) { self = .string(value) }

    /// The id as a JSON value.
    package var jsonValue: JSONValue {
        switch self {
        case let .number(number): .number(number)
        case let .string(string): .string(string)
        case .null: .null
        }
    }

    /// The id as compact JSON text.
    public var description: String { jsonValue.jsonText }
}

/// A JSON-RPC error object: `{"code": …, "message": …, "data": …}`.
public struct JSONRPCErrorObject: Hashable, Sendable {
    /// -32050, "File Descriptor Error": the jsonrpc-fdpass code for framing and fd faults.
    public static let fileDescriptorErrorCode = -32050
    /// -32700, "Parse error".
    package static let parseErrorCode = -32700
    /// -32600, "Invalid Request".
    package static let invalidRequestCode = -32600
    /// -32601, "Method not found".
    public static let methodNotFoundCode = -32601
    /// -32602, "Invalid params".
    public static let invalidParamsCode = -32602
    /// -32603, "Internal error".
    public static let internalErrorCode = -32603

    /// The error code.
    public var code: Int
    /// A short description.
    public var message: String
    /// Extra information; omitted from the wire when `nil`.
    public var data: JSONValue?

    /// Creates an error object.
    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    /// -32050 "File Descriptor Error" (spec §7).
    package static func fileDescriptorError(data: JSONValue? = nil) -> Self {
        Self(code: fileDescriptorErrorCode, message: "File Descriptor Error", data: data)
    }

    /// -32600 "Invalid Request".
    package static func invalidRequest(data: JSONValue? = nil) -> Self {
        Self(code: invalidRequestCode, message: "Invalid Request", data: data)
    }

    /// -32601 "Method not found", as the Go and Rust servers write it.
    package static func methodNotFound(data: JSONValue? = nil) -> Self {
        Self(code: methodNotFoundCode, message: "Method not found", data: data)
    }

    /// -32700 "Parse error".
    package static func parseError(data: JSONValue? = nil) -> Self {
        Self(code: parseErrorCode, message: "Parse error", data: data)
    }

    /// Reads `{"code": integer, "message": string, "data"?: any}`; other members are ignored.
    init(parsing value: JSONValue) throws(ControlError) {
        guard case let .object(object) = value,
            let code = object["code"]?.numberValue?.int64.flatMap({ Int(exactly: $0) }),
            let message = object["message"]?.stringValue
        else { throw .invalidJSONRPC(.malformedErrorObject) }
        self.init(code: code, message: message, data: object["data"])
    }

    /// Appends `{"code":…,"message":…}` with `"data"` last when present.
    func serialize(into bytes: inout [UInt8]) {
        bytes.append(contentsOf: #"{"code":"#.utf8)
        bytes.append(contentsOf: String(code).utf8)
        bytes.append(contentsOf: #","message":"#.utf8)
        appendJSONString(message, to: &bytes)
        if let data {
            bytes.append(contentsOf: #","data":"#.utf8)
            data.serialize(into: &bytes)
        }
        bytes.append(UInt8(ascii: "}"))
    }
}

/// A JSON-RPC request: a `method` and an `id` (which may be `null`).
public struct ControlRequest: Hashable, Sendable {
    /// The method name.
    public var method: String
    /// The parameters as sent (any JSON value; `nil` when the member is absent,
    /// `.null` when it is `null`).
    public var params: JSONValue?
    /// The id the response must echo.
    public var id: JSONRPCID

    /// Creates a request.
    public init(method: String, params: JSONValue? = nil, id: JSONRPCID) {
        self.method = method
        self.params = params
        self.id = id
    }
}

/// A JSON-RPC notification: a `method` and no `id`; never answered.
public struct ControlNotification: Hashable, Sendable {
    /// `"rpc.epitaph"`: the method of the notification a server sends last.
    package static let epitaphMethod = "rpc.epitaph"

    /// The method name.
    public var method: String
    /// The parameters as sent (`nil` when absent, `.null` when `null`).
    public var params: JSONValue?

    /// Creates a notification.
    public init(method: String, params: JSONValue? = nil) {
        self.method = method
        self.params = params
    }

    /// The epitaph notification
    /// `{"jsonrpc":"2.0","method":"rpc.epitaph","params":{"status":S,"code":C,"reason":R}}`.
    /// - Parameters:
    ///   - status: 0 for a designated clean end, negative for system errors, positive for
    ///     application errors.
    ///   - code: The JSON-RPC error code behind the end (e.g. -32050), or 0.
    ///   - reason: A human-readable reason.
    package static func epitaph(status: Int, code: Int, reason: String) -> Self {
        Self(
            method: epitaphMethod,
            params: .object([
                "status": .number(JSONNumber(status)),
                "code": .number(JSONNumber(code)),
                "reason": .string(reason),
            ])
        )
    }
}

/// A JSON-RPC response: the id of the request it answers and a result or an error.
public struct ControlResponse: Hashable, Sendable {
    /// A success or a failure.
    public enum Outcome: Hashable, Sendable {
        /// `"result"`, which may be `null` (written as `"result":null`, never omitted).
        case result(JSONValue)
        /// `"error"`.
        case error(JSONRPCErrorObject)
    }

    /// The id of the request answered (`null` when it could not be read).
    public var id: JSONRPCID
    /// The result or the error.
    public var outcome: Outcome

    /// Creates a response.
    package init(id: JSONRPCID, outcome: Outcome) {
        self.id = id
        self.outcome = outcome
    }

    /// A success carrying `result`.
    public init(id: JSONRPCID, result: JSONValue) {
        self.init(id: id, outcome: .result(result))
    }

    /// A failure carrying `error`.
    public init(id: JSONRPCID, error: JSONRPCErrorObject) {
        self.init(id: id, outcome: .error(error))
    }
}

/// One JSON-RPC 2.0 message of the control channel.
public enum ControlMessage: Hashable, Sendable {
    /// `method` and `id` (also `"id": null`).
    case request(ControlRequest)
    /// `method` and no `id`.
    case notification(ControlNotification)
    /// `result` or `error`, and `id`.
    case response(ControlResponse)

    /// Classifies an object as jsonrpc-fdpass does (spec §8): `method` and `id` make a
    /// request (even `"id": null`); otherwise `result` or `error` make a response;
    /// otherwise `method` makes a notification.
    ///
    /// Stricter than the references where they are lax: `jsonrpc` must be the string
    /// `"2.0"`, a response may not carry both `result` and `error`, ids must be a
    /// number, string or `null`, and an error object needs an integer `code` and a
    /// string `message`. `params` may be any JSON value. Unknown members, `fds`
    /// included, are ignored; for duplicate names the last member wins.
    /// - Throws: ``ControlError/topLevelNotObject(_:)`` or ``ControlError/invalidJSONRPC(_:)``.
    @_spi(Internals) public init(parsing value: JSONValue) throws(ControlError) {
        guard case let .object(object) = value else { throw .topLevelNotObject(value.kind) }
        guard let version = object["jsonrpc"] else { throw .invalidJSONRPC(.missingVersion) }
        guard version == .string("2.0") else {
            throw .invalidJSONRPC(.unsupportedVersion(briefDescription(of: version)))
        }

        let method = object["method"]
        let id = object["id"]
        func readID(_ value: JSONValue) throws(ControlError) -> JSONRPCID {
            guard let id = JSONRPCID(value) else { throw .invalidJSONRPC(.invalidID) }
            return id
        }
        func readMethod(_ value: JSONValue) throws(ControlError) -> String {
            guard case let .string(name) = value else { throw .invalidJSONRPC(.methodNotString) }
            return name
        }

        if let method, let id {
            self = .request(
                ControlRequest(method: try readMethod(method), params: object["params"], id: try readID(id)))
            return
        }
        let result = object["result"]
        let error = object["error"]
        if result != nil || error != nil {
            guard let id else { throw .invalidJSONRPC(.responseWithoutID) }
            let responseID = try readID(id)
            switch (result, error) {
            case let (result?, nil):
                self = .response(ControlResponse(id: responseID, result: result))
            case let (nil, error?):
                self = .response(ControlResponse(id: responseID, error: try JSONRPCErrorObject(parsing: error)))
            default:
                throw .invalidJSONRPC(.resultAndError)
            }
            return
        }
        if let method {
            self = .notification(ControlNotification(method: try readMethod(method), params: object["params"]))
            return
        }
        throw .invalidJSONRPC(.notJSONRPC)
    }

    /// The request's or response's id; `nil` for a notification.
    package var id: JSONRPCID? {
        switch self {
        case let .request(request): request.id
        case .notification: nil
        case let .response(response): response.id
        }
    }

    /// The request's or notification's method; `nil` for a response.
    package var method: String? {
        switch self {
        case let .request(request): request.method
        case let .notification(notification): notification.method
        case .response: nil
        }
    }

    /// Compact UTF-8 JSON for the wire, members in the order `jsonrpc`,
    /// `method`/`result`/`error`, `params`, `id`, `fds` (Go's order): for example
    /// `{"jsonrpc":"2.0","result":{"count":600},"id":2,"fds":600}`.
    ///
    /// `params` is written only when not `nil`, `error.data` only when not `nil`, and
    /// `fds` only when `fileDescriptorCount` is above 0, like both references. A success
    /// whose result is `null` is written `"result":null`.
    package func encoded(fileDescriptorCount: Int = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.append(contentsOf: #"{"jsonrpc":"2.0""#.utf8)
        func appendParams(_ params: JSONValue?) {
            guard let params else { return }
            bytes.append(contentsOf: #","params":"#.utf8)
            params.serialize(into: &bytes)
        }
        func appendID(_ id: JSONRPCID) {
            bytes.append(contentsOf: #","id":"#.utf8)
            id.jsonValue.serialize(into: &bytes)
        }
        switch self {
        case let .request(request):
            bytes.append(contentsOf: #","method":"#.utf8)
            appendJSONString(request.method, to: &bytes)
            appendParams(request.params)
            appendID(request.id)
        case let .notification(notification):
            bytes.append(contentsOf: #","method":"#.utf8)
            appendJSONString(notification.method, to: &bytes)
            appendParams(notification.params)
        case let .response(response):
            switch response.outcome {
            case let .result(result):
                bytes.append(contentsOf: #","result":"#.utf8)
                result.serialize(into: &bytes)
            case let .error(error):
                bytes.append(contentsOf: #","error":"#.utf8)
                error.serialize(into: &bytes)
            }
            appendID(response.id)
        }
        if fileDescriptorCount > 0 {
            bytes.append(contentsOf: #","fds":"#.utf8)
            bytes.append(contentsOf: String(fileDescriptorCount).utf8)
        }
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}

/// A short description of `value` for error messages: scalars as compact JSON (cut at
/// 40 bytes), containers by kind.
func briefDescription(of value: JSONValue) -> String {
    switch value {
    case .array: return "an array"
    case .object: return "an object"
    case .null, .bool, .number, .string:
        let text = value.serialized()
        guard text.count > 40 else { return String(decoding: text, as: UTF8.self) }
        return String(decoding: text.prefix(40), as: UTF8.self) + "…"
    }
}
