/// kvd's data and its old line protocol, unchanged by the retrofit:
/// `SET <key> <value>` → `OK`, `GET <key>` → `VALUE <value>` or `NOT_FOUND`,
/// `DEL <key>` → `OK` or `NOT_FOUND`, anything else → `ERROR <reason>`.
final class KVStore {
    private(set) var pairs: [String: String] = [:]

    /// Executes one command line (without its `\n`) and returns the reply line (without `\n`).
    func execute(_ line: String) -> String {
        var text = Substring(line)
        if text.hasSuffix("\r") { text = text.dropLast() }
        let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard let verb = parts.first, !verb.isEmpty else { return "ERROR empty command" }
        switch verb {
        case "SET":
            guard parts.count == 3, !parts[1].isEmpty else { return "ERROR usage: SET <key> <value>" }
            pairs[String(parts[1])] = String(parts[2])
            return "OK"
        case "GET":
            guard parts.count == 2, !parts[1].isEmpty else { return "ERROR usage: GET <key>" }
            return pairs[String(parts[1])].map { "VALUE \($0)" } ?? "NOT_FOUND"
        case "DEL":
            guard parts.count == 2, !parts[1].isEmpty else { return "ERROR usage: DEL <key>" }
            return pairs.removeValue(forKey: String(parts[1])) != nil ? "OK" : "NOT_FOUND"
        default:
            return "ERROR unknown command \(verb.prefix(32))"
        }
    }

    /// Every pair as `key=value\n`, sorted by key.
    func dump() -> String {
        pairs.keys.sorted().map { "\($0)=\(pairs[$0] ?? "")\n" }.joined()
    }

    /// Loads `key=value` lines; returns how many pairs were set.
    func load(_ text: String) -> Int {
        var count = 0
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "="), equals != line.startIndex else { continue }
            pairs[String(line[..<equals])] = String(line[line.index(after: equals)...])
            count += 1
        }
        return count
    }
}

/// The old protocol's framing: one command per `\n`-terminated line, at most 64 KiB.
enum KVLineProtocol {
    static let maxLineBytes = 64 * 1024

    /// The length of the first complete line (with its `\n`), if any.
    static func lineLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        bytes.firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 }
    }
}
