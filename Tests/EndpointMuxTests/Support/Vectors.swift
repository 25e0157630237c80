import Foundation
@_spi(Internals) @testable import EndpointMux

/// Captured running-process bytes in Tests/Vectors/running-process.
enum Vectors {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Vectors/running-process")

    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    static func hexFile(_ name: String) throws -> [UInt8] {
        try hex(text(name).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Rows of a TSV file as dictionaries keyed by the header.
    static func tsv(_ name: String) throws -> [[String: String]] {
        let lines = try text(name).split(separator: "\n", omittingEmptySubsequences: true)
        guard let header = lines.first?.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) else {
            return []
        }
        return lines.dropFirst().map { line in
            let cells = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return Dictionary(
                uniqueKeysWithValues: zip(
                    header, cells + Array(repeating: "", count: max(0, header.count - cells.count))))
        }
    }

    /// The identity of the server that produced the captures (README "run-specific values").
    static let captureIdentity = DaemonIdentity(
        pid: 5647,
        executablePath: "/opt/exampled/bin/exampled",
        executableHash: try! hex("1a639e4d7e9e7607eea07e67977ce24415991645133ca547b73753a3f4ad7a73"),
        bootID: "7f178b59-f577-4878-9241-3a4162f48ad9",
        endpoint: IPCEndpoint(
            namespaceID: "exampled",
            path: "/run/user/1000/running-process/broker-v2/rp-svc-exampled-603652b2.sock"),
        startedAtUnixMilliseconds: 1_795_286_673_302)

    static let captureLane: PayloadProtocol = 0x7A63
}

struct HexError: Error {}

func hex(_ text: some StringProtocol) throws -> [UInt8] {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { throw HexError() }
    func nibble(_ c: UInt8) throws -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: throw HexError()
        }
    }
    return try stride(from: 0, to: digits.count, by: 2).map { try nibble(digits[$0]) << 4 | nibble(digits[$0 + 1]) }
}

func hexString(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}
