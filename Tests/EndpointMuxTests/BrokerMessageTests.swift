import Testing

@_spi(Internals) @testable import EndpointMux

private func json(_ text: String) throws -> JSONValue { try JSONValue(parsing: text) }
private func text(_ value: JSONValue) -> String { String(decoding: value.serialized(), as: UTF8.self) }

private func decode(_ method: String, _ params: String?) throws -> BrokerRequest {
    try BrokerRequest(method: method, params: try params.map(json))
}

private func decodeError(_ method: String, _ params: String?) throws -> BrokerDecodeError? {
    let value = try params.map(json)
    do throws(BrokerDecodeError) {
        _ = try BrokerRequest(method: method, params: value)
        return nil
    } catch {
        return error
    }
}

@Suite("Broker messages")
struct BrokerMessageTests {
    @Test("endpoints parse, canonicalise and format")
    func endpoints() throws {
        #expect(
            try BrokerEndpoint(parsing: json(#"{"kind":"tcp","host":"127.0.0.1","port":8080}"#))
                == .tcp(host: "127.0.0.1", port: 8080))
        #expect(
            try BrokerEndpoint(parsing: json(#"{"kind":"tcp","host":"::0:1","port":0}"#)) == .tcp(host: "::1", port: 0))
        #expect(
            try BrokerEndpoint(parsing: json(#"{"kind":"tcp","host":"FE80:0:0::1","port":1}"#))
                == .tcp(host: "fe80::1", port: 1))
        #expect(
            try BrokerEndpoint(parsing: json(#"{"port":9,"host":"10.0.0.1","kind":"tcp","extra":true}"#))
                == .tcp(host: "10.0.0.1", port: 9))
        #expect(
            try BrokerEndpoint(parsing: json(#"{"kind":"unix","path":"/run/x.sock"}"#)) == .unix(path: "/run/x.sock"))
        #expect(try BrokerEndpoint(parsing: json(#"{"kind":"pair"}"#)) == .pair)

        #expect(text(BrokerEndpoint.tcp(host: "::1", port: 80).jsonValue) == #"{"kind":"tcp","host":"::1","port":80}"#)
        #expect(text(BrokerEndpoint.unix(path: "/a").jsonValue) == #"{"kind":"unix","path":"/a"}"#)
        #expect(text(BrokerEndpoint.pair.jsonValue) == #"{"kind":"pair"}"#)
        #expect(BrokerEndpoint.tcp(host: "::1", port: 80).description == "tcp:[::1]:80")
        #expect(BrokerEndpoint.tcp(host: "127.0.0.1", port: 0).description == "tcp:127.0.0.1:0")
        for endpoint: BrokerEndpoint in [
            .tcp(host: "::1", port: 80), .tcp(host: "1.2.3.4", port: 65535), .unix(path: "/x/y"), .pair,
        ] {
            #expect(try BrokerEndpoint(text: endpoint.description) == endpoint)
            #expect(try BrokerEndpoint(parsing: endpoint.jsonValue) == endpoint)
        }
    }

    @Test("every endpoint fault is its own typed error")
    func endpointFaults() throws {
        let cases: [(String, BrokerDecodeError)] = [
            (#""tcp:1.2.3.4:80""#, .wrongType(member: "endpoint", expected: "an object")),
            (#"{"host":"1.2.3.4","port":1}"#, .missingMember("endpoint.kind")),
            (#"{"kind":7}"#, .wrongType(member: "endpoint.kind", expected: "a string")),
            (#"{"kind":"udp"}"#, .unknownEndpointKind("udp")),
            (#"{"kind":"tcp","port":1}"#, .missingMember("endpoint.host")),
            (#"{"kind":"tcp","host":"localhost","port":1}"#, .invalidHost("localhost")),
            (#"{"kind":"tcp","host":"1.2.3","port":1}"#, .invalidHost("1.2.3")),
            (#"{"kind":"tcp","host":"fe80::1%eth0","port":1}"#, .invalidHost("fe80::1%eth0")),
            (#"{"kind":"tcp","host":"","port":1}"#, .invalidHost("")),
            (#"{"kind":"tcp","host":"1.2.3.4"}"#, .missingMember("endpoint.port")),
            (
                #"{"kind":"tcp","host":"1.2.3.4","port":"80"}"#,
                .wrongType(member: "endpoint.port", expected: "an integer")
            ),
            (#"{"kind":"tcp","host":"1.2.3.4","port":65536}"#, .invalidPort("65536")),
            (#"{"kind":"tcp","host":"1.2.3.4","port":-1}"#, .invalidPort("-1")),
            (#"{"kind":"tcp","host":"1.2.3.4","port":80.0}"#, .invalidPort("80.0")),
            (#"{"kind":"tcp","host":"1.2.3.4","port":8e1}"#, .invalidPort("8e1")),
            (#"{"kind":"unix"}"#, .missingMember("endpoint.path")),
            (#"{"kind":"unix","path":"run/x"}"#, .invalidPath("run/x")),
            (#"{"kind":"unix","path":"/run/app/../../etc/x"}"#, .invalidPath("/run/app/../../etc/x")),
            (#"{"kind":"unix","path":"/run/./x"}"#, .invalidPath("/run/./x")),
            (#"{"kind":"unix","path":"/run//x"}"#, .invalidPath("/run//x")),
            (#"{"kind":"unix","path":"/run/x/"}"#, .invalidPath("/run/x/")),
            (#"{"kind":"unix","path":"/a\u0000b"}"#, .invalidPath("/a\u{0}b")),
        ]
        for (input, expected) in cases {
            let value = try json(input)
            do throws(BrokerDecodeError) {
                let endpoint = try BrokerEndpoint(parsing: value)
                Issue.record("\(input) parsed as \(endpoint)")
            } catch {
                #expect(error == expected, "\(input)")
            }
        }
        let long = "/" + String(repeating: "a", count: 107)
        #expect(throws: BrokerDecodeError.invalidPath(long)) {
            try BrokerEndpoint(parsing: .object(["kind": "unix", "path": .string(long)]))
        }
        #expect(
            try BrokerEndpoint(parsing: .object(["kind": "unix", "path": .string(String(long.dropLast()))]))
                == .unix(path: String(long.dropLast())))
    }

    @Test("requests decode from control messages and encode back exactly")
    func requests() throws {
        let cases: [(String, String, BrokerRequest)] = [
            (
                "listen", #"{"endpoint":{"kind":"tcp","host":"127.0.0.1","port":0}}"#,
                .listen(endpoint: .tcp(host: "127.0.0.1", port: 0), backlog: nil)
            ),
            (
                "listen", #"{"endpoint":{"kind":"unix","path":"/run/app/s"},"backlog":5}"#,
                .listen(endpoint: .unix(path: "/run/app/s"), backlog: 5)
            ),
            ("listen", #"{"endpoint":{"kind":"pair"}}"#, .listen(endpoint: .pair, backlog: nil)),
            ("accept", #"{"listener":3}"#, .accept(listener: BrokerListenerID(3))),
            (
                "connect", #"{"endpoint":{"kind":"tcp","host":"::1","port":6379},"timeoutMs":250}"#,
                .connect(.endpoint(.tcp(host: "::1", port: 6379)), timeoutMilliseconds: 250)
            ),
            (
                "connect", #"{"listener":18446744073709551615}"#,
                .connect(.listener(BrokerListenerID(.max)), timeoutMilliseconds: nil)
            ),
            ("close", #"{"listener":0}"#, .close(listener: BrokerListenerID(0))),
        ]
        for (method, params, expected) in cases {
            let message = try ControlMessage(
                parsing: try json(#"{"jsonrpc":"2.0","method":"\#(method)","params":\#(params),"id":7}"#))
            guard case let .request(request) = message else {
                Issue.record("not a request")
                continue
            }
            let decoded = try BrokerRequest(decoding: request)
            #expect(decoded == expected)
            #expect(decoded.method == method)
            // Encoded back exactly: the same text (members in the protocol's order).
            #expect(text(decoded.params) == params)
            let wire = ControlMessage.request(decoded.controlRequest(id: 7)).encoded()
            #expect(
                String(decoding: wire, as: UTF8.self)
                    == #"{"jsonrpc":"2.0","method":"\#(method)","params":\#(params),"id":7}"#)
            #expect(try BrokerRequest(method: decoded.method, params: decoded.params) == decoded)
        }
    }

    @Test("every request fault is a typed error answered -32602 or -32601")
    func requestFaults() throws {
        let cases: [(String, String?, BrokerDecodeError)] = [
            ("bind", "{}", .unknownMethod("bind")),
            ("listen", nil, .paramsNotObject),
            ("listen", "[1]", .paramsNotObject),
            ("listen", "{}", .missingMember("endpoint")),
            ("listen", #"{"endpoint":{"kind":"pair"},"backlog":-1}"#, .invalidBacklog("-1")),
            (
                "listen", #"{"endpoint":{"kind":"pair"},"backlog":"5"}"#,
                .wrongType(member: "backlog", expected: "an integer")
            ),
            (
                "listen", #"{"endpoint":{"kind":"pair"},"listener":1}"#,
                .conflict("listen takes an endpoint, not a listener")
            ),
            ("accept", "{}", .missingMember("listener")),
            ("accept", #"{"listener":"1"}"#, .wrongType(member: "listener", expected: "an integer")),
            ("accept", #"{"listener":-1}"#, .invalidListenerID("-1")),
            ("accept", #"{"listener":1.5}"#, .invalidListenerID("1.5")),
            ("accept", #"{"listener":18446744073709551616}"#, .invalidListenerID("18446744073709551616")),
            ("close", #"{"listener":null}"#, .wrongType(member: "listener", expected: "an integer")),
            ("connect", "{}", .missingMember("endpoint")),
            (
                "connect", #"{"endpoint":{"kind":"pair"}}"#,
                .conflict("connect to a pair endpoint names its listener: {\"listener\": id}")
            ),
            (
                "connect", #"{"endpoint":{"kind":"tcp","host":"1.2.3.4","port":0}}"#,
                .invalidPort("0 (connect needs a port)")
            ),
            (
                "connect", #"{"endpoint":{"kind":"pair"},"listener":1}"#,
                .conflict("connect takes an endpoint or a listener, not both")
            ),
            ("connect", #"{"listener":1,"timeoutMs":-5}"#, .invalidTimeout("-5")),
            ("connect", #"{"listener":1,"timeoutMs":86400001}"#, .invalidTimeout("86400001")),
            ("connect", #"{"listener":1,"timeoutMs":true}"#, .wrongType(member: "timeoutMs", expected: "an integer")),
        ]
        for (method, params, expected) in cases {
            let error = try decodeError(method, params)
            #expect(error == expected, "\(method) \(params ?? "nil")")
            guard let error else { continue }
            let object = BrokerError.decode(error).errorObject
            #expect(object.code == (method == "bind" ? -32601 : -32602))
            #expect(object.data?["name"] == (method == "bind" ? "MethodNotFound" : "InvalidParams"))
        }
        #expect(
            try decode("connect", #"{"listener":1,"timeoutMs":null}"#)
                == .connect(.listener(BrokerListenerID(1)), timeoutMilliseconds: nil))
    }

    @Test("errors are encoded exactly, each with data.name")
    func errors() throws {
        let cases: [(BrokerError, String)] = [
            (
                .permissionDenied(rule: "listen=tcp:0.0.0.0:80"),
                #"{"code":-32001,"message":"permission denied: no --allow listen=tcp:0.0.0.0:80","data":{"name":"PermissionDenied","rule":"listen=tcp:0.0.0.0:80"}}"#
            ),
            (
                .permissionDenied(rule: "uid=1000"),
                #"{"code":-32001,"message":"permission denied: no --allow-uid 1000","data":{"name":"PermissionDenied","rule":"uid=1000"}}"#
            ),
            (
                .unknownListener(BrokerListenerID(9)),
                #"{"code":-32002,"message":"unknown listener 9","data":{"name":"UnknownListener","listener":9}}"#
            ),
            (
                .system(name: "ECONNREFUSED", errno: 111, message: "Connection refused"),
                #"{"code":-32003,"message":"system error ECONNREFUSED (111): Connection refused","data":{"name":"ECONNREFUSED","errno":111,"message":"Connection refused"}}"#
            ),
            (.timedOut, #"{"code":-32004,"message":"timed out","data":{"name":"TimedOut"}}"#),
            (
                .listenerClosed(BrokerListenerID(2)),
                #"{"code":-32005,"message":"listener 2 closed","data":{"name":"ListenerClosed","listener":2}}"#
            ),
            (
                .limitExceeded("listeners per connection (64)"),
                #"{"code":-32006,"message":"limit exceeded: listeners per connection (64)","data":{"name":"LimitExceeded","limit":"listeners per connection (64)"}}"#
            ),
            (.cancelled, #"{"code":-32800,"message":"cancelled","data":{"name":"Cancelled"}}"#),
        ]
        for (error, expected) in cases {
            var bytes: [UInt8] = []
            error.errorObject.serialize(into: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == expected)
            #expect(BrokerError(error.errorObject) == error)
        }
        #expect(
            BrokerError.system(errno: 111) == .system(name: "ECONNREFUSED", errno: 111, message: "Connection refused"))
        #expect(ErrnoName.name(of: 4242) == "E4242")
        #expect(BrokerError(JSONRPCErrorObject(code: -32602, message: "x")) == nil)
    }

    @Test("results are encoded exactly and read back")
    func results() throws {
        let cases: [(BrokerResult, String, String)] = [
            (
                .listening(listener: BrokerListenerID(1), endpoint: .tcp(host: "127.0.0.1", port: 40000)), "listen",
                #"{"listener":1,"endpoint":{"kind":"tcp","host":"127.0.0.1","port":40000}}"#
            ),
            (
                .accepted(listener: BrokerListenerID(1), local: .pair, peer: .pair), "accept",
                #"{"listener":1,"local":{"kind":"pair"},"peer":{"kind":"pair"}}"#
            ),
            (
                .connected(local: .unix(path: ""), peer: .unix(path: "/run/x")), "connect",
                #"{"local":{"kind":"unix","path":""},"peer":{"kind":"unix","path":"/run/x"}}"#
            ),
            (.closed, "close", "null"),
        ]
        for (result, method, expected) in cases {
            #expect(text(result.jsonValue) == expected)
            #expect(try BrokerResult(parsing: result.jsonValue, method: method) == result)
        }
        #expect(
            BrokerResult.accepted(listener: BrokerListenerID(1), local: .pair, peer: .pair).fileDescriptorCount == 1)
        #expect(BrokerResult.closed.fileDescriptorCount == 0)
    }

    @Test("cancel notifications")
    func cancel() throws {
        let cancel = BrokerCancel(id: 5)
        #expect(
            String(decoding: ControlMessage.notification(cancel.notification).encoded(), as: UTF8.self)
                == #"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":5}}"#)
        #expect(try BrokerCancel(decoding: cancel.notification) == cancel)
        #expect(
            try BrokerCancel(decoding: ControlNotification(method: "$/cancelRequest", params: ["id": "a"])).id == "a")
        for params: JSONValue? in [nil, [:], ["id": .null], ["id": [1]], ["id": true]] {
            #expect(throws: BrokerDecodeError.invalidCancel) {
                try BrokerCancel(decoding: ControlNotification(method: "$/cancelRequest", params: params))
            }
        }
    }

    @Test("policy rules parse, match and name what is missing")
    func policy() throws {
        let policy = try BrokerPolicy(
            allowing: [
                "listen=tcp:127.0.0.1:*", "connect=tcp:127.0.0.1:6379", "listen=unix:/run/app/*", "pair",
                "connect=tcp:[::1]:*", "connect=unix:/run/*/db.sock",
            ],
            allowedUIDs: [1000])
        #expect(policy.check(uid: 1000) == nil)
        #expect(policy.check(uid: 0) == "uid=0")
        #expect(policy.missingRule(listen: .tcp(host: "127.0.0.1", port: 0)) == nil)
        #expect(policy.missingRule(listen: .tcp(host: "127.0.0.1", port: 8080)) == nil)
        #expect(policy.missingRule(listen: .tcp(host: "0.0.0.0", port: 8080)) == "listen=tcp:0.0.0.0:8080")
        #expect(policy.missingRule(connect: .tcp(host: "127.0.0.1", port: 6379)) == nil)
        #expect(policy.missingRule(connect: .tcp(host: "127.0.0.1", port: 6380)) == "connect=tcp:127.0.0.1:6380")
        #expect(policy.missingRule(listen: .tcp(host: "127.0.0.1", port: 6379)) == nil)
        #expect(policy.missingRule(connect: .tcp(host: "::1", port: 5)) == nil)
        #expect(policy.missingRule(connect: .tcp(host: "::2", port: 5)) == "connect=tcp:[::2]:5")
        #expect(policy.missingRule(listen: .unix(path: "/run/app/s.sock")) == nil)
        #expect(policy.missingRule(listen: .unix(path: "/run/app/sub/s.sock")) == nil)  // a final * takes the rest
        #expect(policy.missingRule(listen: .unix(path: "/run/apps")) == "listen=unix:/run/apps")
        #expect(policy.missingRule(connect: .unix(path: "/run/app/s.sock")) == "connect=unix:/run/app/s.sock")
        #expect(policy.missingRule(connect: .unix(path: "/run/pg/db.sock")) == nil)
        // * stops at /
        #expect(policy.missingRule(connect: .unix(path: "/run/a/b/db.sock")) == "connect=unix:/run/a/b/db.sock")
        #expect(policy.missingRule(listen: .pair) == nil)
        #expect(policy.missingRule(connect: .pair) == nil)
        #expect(BrokerPolicy().missingRule(listen: .pair) == "pair")
        #expect(BrokerPolicy().missingRule(connect: .tcp(host: "127.0.0.1", port: 1)) == "connect=tcp:127.0.0.1:1")
        #expect(BrokerPolicy().check(uid: 0) == "uid=0")  // default deny

        #expect(
            policy.rules.map(\.description) == [
                "listen=tcp:127.0.0.1:*", "connect=tcp:127.0.0.1:6379", "listen=unix:/run/app/*",
                "pair", "connect=tcp:[::1]:*", "connect=unix:/run/*/db.sock",
            ])
        for bad in [
            "listen", "bind=tcp:1.2.3.4:1", "listen=tcp:localhost:1", "listen=tcp:1.2.3.4:x", "listen=udp:1.2.3.4:1",
            "listen=unix:relative", "listen=unix:/run/../etc", "connect=tcp:1.2.3.4",
        ] {
            #expect(throws: BrokerPolicyError.self, "\(bad)") { try BrokerPolicy.Rule(parsing: bad) }
        }
    }
}
