import Glibc

/// An endpoint of the broker protocol: `{"kind":"tcp","host":"127.0.0.1","port":8080}`,
/// `{"kind":"unix","path":"/run/x.sock"}` or `{"kind":"pair"}` (a broker-local rendezvous
/// with no kernel address).
///
/// TCP hosts are IPv4 or IPv6 *literals* (no names: the broker never resolves), kept in
/// canonical text (`inet_ntop`'s), so `::0:1` and `::1` are the same endpoint. Unix paths
/// are absolute, shorter than `sun_path`, and have no `.` or `..` components, so a policy
/// prefix such as `/run/app/*` cannot be escaped.
public enum BrokerEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// A TCP address: an IP literal in canonical form and a port (0: any, for `listen`).
    case tcp(host: String, port: UInt16)
    /// A Unix stream socket path (empty for an unnamed socket, as a peer's address often is).
    case unix(path: String)
    /// The broker's own rendezvous: no kernel address.
    case pair

    /// The longest Unix path accepted (`sun_path` holds 108 bytes with its NUL on Linux).
    package static let maxUnixPathByteCount = 107

    /// Reads an endpoint object; every fault is a typed ``BrokerDecodeError`` naming the member.
    @_spi(Internals) public init(parsing value: JSONValue, member: String = "endpoint") throws(BrokerDecodeError) {
        guard case let .object(object) = value else { throw .wrongType(member: member, expected: "an object") }
        guard let kindValue = object["kind"] else { throw .missingMember("\(member).kind") }
        guard case let .string(kind) = kindValue else {
            throw .wrongType(member: "\(member).kind", expected: "a string")
        }
        switch kind {
        case "tcp":
            guard let hostValue = object["host"] else { throw .missingMember("\(member).host") }
            guard case let .string(host) = hostValue else {
                throw .wrongType(member: "\(member).host", expected: "a string")
            }
            guard let canonical = Self.canonicalHost(host) else { throw .invalidHost(host) }
            guard let portValue = object["port"] else { throw .missingMember("\(member).port") }
            guard case let .number(number) = portValue else {
                throw .wrongType(member: "\(member).port", expected: "an integer")
            }
            guard let port = number.int64, (0...65535).contains(port) else { throw .invalidPort(number.text) }
            self = .tcp(host: canonical, port: UInt16(port))
        case "unix":
            guard let pathValue = object["path"] else { throw .missingMember("\(member).path") }
            guard case let .string(path) = pathValue else {
                throw .wrongType(member: "\(member).path", expected: "a string")
            }
            guard Self.isAcceptablePath(path) else { throw .invalidPath(path) }
            self = .unix(path: path)
        case "pair":
            self = .pair
        default:
            throw .unknownEndpointKind(kind)
        }
    }

    /// Reads the text form used by rules and the command line: `tcp:127.0.0.1:80`,
    /// `tcp:[::1]:80`, `unix:/run/x.sock`, `pair`.
    package init(text: String) throws(BrokerDecodeError) {
        if text == "pair" {
            self = .pair
            return
        }
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard Self.isAcceptablePath(path) else { throw .invalidPath(path) }
            self = .unix(path: path)
            return
        }
        guard text.hasPrefix("tcp:") else { throw .unknownEndpointKind(text) }
        let rest = text.dropFirst(4)
        guard let colon = rest.lastIndex(of: ":") else { throw .invalidPort(String(rest)) }
        var host = String(rest[..<colon])
        let portText = String(rest[rest.index(after: colon)...])
        if host.hasPrefix("[") && host.hasSuffix("]") && host.count >= 2 { host = String(host.dropFirst().dropLast()) }
        guard let canonical = Self.canonicalHost(host) else { throw .invalidHost(host) }
        guard let port = UInt16(portText) else { throw .invalidPort(portText) }
        self = .tcp(host: canonical, port: port)
    }

    /// The endpoint as a protocol object (members in the order `kind`, `host`/`path`, `port`).
    package var jsonValue: JSONValue {
        switch self {
        case let .tcp(host, port):
            return ["kind": "tcp", "host": .string(host), "port": .number(JSONNumber(Int(port)))]
        case let .unix(path):
            return ["kind": "unix", "path": .string(path)]
        case .pair:
            return ["kind": "pair"]
        }
    }

    /// The text form: `tcp:127.0.0.1:80`, `tcp:[::1]:80`, `unix:/run/x.sock`, `pair`
    /// (`unix:(unnamed)` for an unnamed socket, which does not parse back).
    public var description: String {
        switch self {
        case let .tcp(host, port):
            return host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        case let .unix(path): return path.isEmpty ? "unix:(unnamed)" : "unix:\(path)"
        case .pair: return "pair"
        }
    }

    /// Whether the TCP host is an IPv6 literal.
    package var isIPv6: Bool {
        if case let .tcp(host, _) = self { return host.contains(":") }
        return false
    }

    /// The canonical text of an IPv4 or IPv6 literal; `nil` for anything else (names,
    /// scoped addresses, stray characters).
    package static func canonicalHost(_ host: String) -> String? {
        guard !host.isEmpty, host.utf8.count <= 45, !host.utf8.contains(0) else { return nil }
        if host.contains(":") {
            var address = in6_addr()
            guard inet_pton(AF_INET6, host, &address) == 1 else { return nil }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return nil }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        var address = in_addr()
        guard inet_pton(AF_INET, host, &address) == 1 else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &address, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Absolute, short enough for `sun_path`, no NUL, no empty, `.` or `..` components.
    static func isAcceptablePath(_ path: String) -> Bool {
        let bytes = path.utf8
        guard bytes.first == UInt8(ascii: "/"), bytes.count <= maxUnixPathByteCount, !bytes.contains(0) else {
            return false
        }
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        return !components.contains { $0 == "." || $0 == ".." || $0.isEmpty }
    }
}
