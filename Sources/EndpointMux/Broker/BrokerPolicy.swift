/// What a broker allows, default deny: rules such as `listen=tcp:127.0.0.1:*`,
/// `connect=tcp:127.0.0.1:6379`, `listen=unix:/run/app/*`, `pair`, and the uids (from
/// `SO_PEERCRED`) allowed to ask at all.
///
/// A denied request is answered −32001 with the missing rule: the exact `--allow` text that
/// would have allowed it (`listen=tcp:127.0.0.1:8080`) or `uid=N`.
public struct BrokerPolicy: Hashable, Sendable {
    /// One `--allow` rule.
    public enum Rule: Hashable, Sendable, CustomStringConvertible {
        /// `listen=PATTERN`.
        case listen(BrokerEndpointPattern)
        /// `connect=PATTERN`.
        case connect(BrokerEndpointPattern)
        /// `pair`: listen on and connect to `pair` listeners.
        case pair

        /// Reads `listen=tcp:127.0.0.1:*`, `connect=unix:/run/x.sock`, `pair`.
        package init(parsing text: String) throws(BrokerPolicyError) {
            if text == "pair" {
                self = .pair
                return
            }
            guard let equals = text.firstIndex(of: "=") else {
                throw .invalidRule(text, "expected listen=…, connect=… or pair")
            }
            let verb = text[..<equals]
            let pattern = try BrokerEndpointPattern(parsing: String(text[text.index(after: equals)...]))
            switch verb {
            case "listen": self = .listen(pattern)
            case "connect": self = .connect(pattern)
            default: throw .invalidRule(text, "unknown verb \"\(verb)\" (listen, connect)")
            }
        }

        /// The rule's text.
        public var description: String {
            switch self {
            case let .listen(pattern): "listen=\(pattern)"
            case let .connect(pattern): "connect=\(pattern)"
            case .pair: "pair"
            }
        }
    }

    /// The rules; nothing is allowed that no rule names.
    public var rules: [Rule]
    /// The uids allowed to use the broker at all.
    public var allowedUIDs: Set<UInt32>

    /// A policy of `rules` for `allowedUIDs` (both empty: everything denied).
    public init(rules: [Rule] = [], allowedUIDs: Set<UInt32> = []) {
        self.rules = rules
        self.allowedUIDs = allowedUIDs
    }

    /// Parses `--allow` texts.
    package init(allowing texts: [String], allowedUIDs: Set<UInt32>) throws(BrokerPolicyError) {
        var rules: [Rule] = []
        for text in texts { rules.append(try Rule(parsing: text)) }
        self.init(rules: rules, allowedUIDs: allowedUIDs)
    }

    /// Whether `uid` may use the broker; the missing rule (`uid=N`) when not.
    package func check(uid: UInt32) -> String? {
        allowedUIDs.contains(uid) ? nil : "uid=\(uid)"
    }

    /// The rule missing for `request`, or `nil` when allowed. `pairListener` tells whether a
    /// `connect {"listener": id}` names a pair listener (only those can be connected to).
    package func missingRule(listen endpoint: BrokerEndpoint) -> String? {
        if endpoint == .pair { return rules.contains(.pair) ? nil : "pair" }
        for case let .listen(pattern) in rules where pattern.matches(endpoint) { return nil }
        return "listen=\(endpoint)"
    }

    /// The rule missing to connect to `endpoint` (`pair` for a pair listener), or `nil`.
    package func missingRule(connect endpoint: BrokerEndpoint) -> String? {
        if endpoint == .pair { return rules.contains(.pair) ? nil : "pair" }
        for case let .connect(pattern) in rules where pattern.matches(endpoint) { return nil }
        return "connect=\(endpoint)"
    }
}

/// Why a rule did not parse.
package enum BrokerPolicyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The rule text and what is wrong with it.
    case invalidRule(String, String)

    package var description: String {
        switch self {
        case let .invalidRule(text, reason): "invalid rule \"\(text)\": \(reason)"
        }
    }
}

/// An endpoint with wildcards: `tcp:HOST:PORT` where HOST is a literal or `*` and PORT a
/// number or `*` (`tcp:[::1]:*` for IPv6), or `unix:PATH` where `*` matches any run of
/// characters except `/` and a final `*` any remainder (`unix:/run/app/*`).
public struct BrokerEndpointPattern: Hashable, Sendable, CustomStringConvertible {
    enum Form: Hashable, Sendable {
        case tcp(host: String?, port: UInt16?)
        case unix(glob: String)
    }

    let form: Form

    /// Reads a pattern.
    package init(parsing text: String) throws(BrokerPolicyError) {
        if text.hasPrefix("unix:") {
            let glob = String(text.dropFirst(5))
            guard glob.hasPrefix("/"), !glob.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
                throw .invalidRule(text, "a unix pattern is an absolute path without . or .. components")
            }
            form = .unix(glob: glob)
            return
        }
        guard text.hasPrefix("tcp:") else { throw .invalidRule(text, "expected tcp:HOST:PORT or unix:PATH") }
        let rest = text.dropFirst(4)
        guard let colon = rest.lastIndex(of: ":") else { throw .invalidRule(text, "expected tcp:HOST:PORT") }
        var host = String(rest[..<colon])
        let portText = String(rest[rest.index(after: colon)...])
        if host.hasPrefix("["), host.hasSuffix("]"), host.count >= 2 { host = String(host.dropFirst().dropLast()) }
        let hostPattern: String?
        if host == "*" {
            hostPattern = nil
        } else {
            guard let canonical = BrokerEndpoint.canonicalHost(host) else {
                throw .invalidRule(text, "host \"\(host)\" is not an IP literal or *")
            }
            hostPattern = canonical
        }
        let portPattern: UInt16?
        if portText == "*" {
            portPattern = nil
        } else {
            guard let port = UInt16(portText) else {
                throw .invalidRule(text, "port \"\(portText)\" is not 0...65535 or *")
            }
            portPattern = port
        }
        form = .tcp(host: hostPattern, port: portPattern)
    }

    /// Whether `endpoint` is one the pattern names.
    public func matches(_ endpoint: BrokerEndpoint) -> Bool {
        switch (form, endpoint) {
        case let (.tcp(hostPattern, portPattern), .tcp(host, port)):
            return (hostPattern == nil || hostPattern == host) && (portPattern == nil || portPattern == port)
        case let (.unix(glob), .unix(path)):
            return Self.glob(Array(glob.utf8)[...], matches: Array(path.utf8)[...])
        default:
            return false
        }
    }

    public var description: String {
        switch form {
        case let .tcp(host, port):
            let hostText = host.map { $0.contains(":") ? "[\($0)]" : $0 } ?? "*"
            return "tcp:\(hostText):\(port.map(String.init) ?? "*")"
        case let .unix(glob):
            return "unix:\(glob)"
        }
    }

    /// `*` matches a run without `/`, except a final `*`, which matches any remainder.
    static func glob(_ pattern: ArraySlice<UInt8>, matches text: ArraySlice<UInt8>) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        if first == UInt8(ascii: "*") {
            let rest = pattern.dropFirst()
            if rest.isEmpty { return true }
            var index = text.startIndex
            while true {
                if glob(rest, matches: text[index...]) { return true }
                guard index < text.endIndex, text[index] != UInt8(ascii: "/") else { return false }
                index += 1
            }
        }
        guard let head = text.first, head == first else { return false }
        return glob(pattern.dropFirst(), matches: text.dropFirst())
    }
}
