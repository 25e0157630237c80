import Foundation
import Testing
@_spi(Internals) @testable import EndpointMux

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

@Suite struct IdentityFileDecodingTests {
    @Test func decodesTheReferenceFile() throws {
        let bytes = Array(try Vectors.text("identity-file.json").utf8)
        #expect(try IdentityFile.decode(bytes) == Vectors.captureIdentity)
    }

    @Test func roundTrips() throws {
        var identity = Vectors.captureIdentity
        identity.idleTimeoutSeconds = 30
        #expect(try IdentityFile.decode(Array(IdentityFile.encode(identity).utf8)) == identity)
    }

    @Test func compactAndOptionalFieldsAreAccepted() throws {
        let text =
            #"{"pid":1,"exe_path":"/x","exe_hash_algorithm":"blake3","exe_hash":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"boot_id":"","ipc_endpoint":{"namespace_id":"n","path":"/p"},"started_at_unix_ms":5}"#
        let identity = try IdentityFile.decode(Array(text.utf8))
        #expect(identity.pid == 1 && identity.idleTimeoutSeconds == nil && identity.endpoint.path == "/p")
    }

    @Test(arguments: ["started_at_unix_ms", "exe_hash_algorithm", "pid", "exe_hash", "ipc_endpoint"])
    func requiredFieldsAreRequired(field: String) throws {
        var object = try JSONValue(parsing: try Vectors.text("identity-file.json")).objectValue ?? [:]
        object.members.removeAll { $0.key == field }
        #expect(throws: EndpointMuxError.self) { try IdentityFile.decode(JSONValue.object(object).serialized()) }
    }

    @Test func otherAlgorithmsAreRejected() throws {
        let text = try Vectors.text("identity-file.json").replacingOccurrences(of: "\"blake3\"", with: "\"sha256\"")
        #expect(throws: EndpointMuxError.self) { try IdentityFile.decode(Array(text.utf8)) }
    }
}
