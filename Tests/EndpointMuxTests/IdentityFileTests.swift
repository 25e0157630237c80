import Foundation
import Testing
@testable import EndpointMux

@Suite struct IdentityFileTests {
    @Test func encodesExactlyLikeTheReference() throws {
        let expected = try Vectors.text("identity-file.json")
        #expect(expected.utf8.count == 905)
        #expect(IdentityFile.encode(Vectors.captureIdentity) == expected)
    }

    @Test func writesAtomicallyAndRemoves() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("idfile-\(UUID().uuidString)/a/b")
        let path = dir.appendingPathComponent("svc.identity.json").path
        try IdentityFile.write(Vectors.captureIdentity, to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == IdentityFile.encode(Vectors.captureIdentity))
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        IdentityFile.remove(at: path)
        #expect(!FileManager.default.fileExists(atPath: path))
        try? FileManager.default.removeItem(at: dir.deletingLastPathComponent().deletingLastPathComponent())
    }

    @Test func escapesLikeSerde() {
        #expect(IdentityFile.jsonString("a\"b\\c\n\u{01}é/") == "\"a\\\"b\\\\c\\n\\u0001é/\"")
    }
}
