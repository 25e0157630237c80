import Testing
@_spi(Internals) @testable import EndpointMux

/// Every row of the reference's own `native_service_paths` output.
@Suite struct ServiceEndpointTests {
    struct Row: CustomTestStringConvertible, Sendable {
        let cells: [String: String]
        var testDescription: String {
            "\(cells["name"] ?? "") rd=\(cells["runtime_dir"] ?? "") xdg=\(cells["XDG_RUNTIME_DIR"] ?? "")"
        }
    }

    static let rows = ((try? Vectors.tsv("endpoint-paths.tsv")) ?? []).map(Row.init)

    @Test func allRowsLoaded() { #expect(Self.rows.count == 20) }

    @Test(arguments: rows)
    func matchesTheReference(row: Row) throws {
        let c = row.cells
        func optional(_ key: String) -> String? { c[key] == "unset" ? nil : c[key] }
        let runtimeDir = c["runtime_dir"].flatMap { $0.isEmpty ? nil : $0 }
        let environment = ServiceEndpoint.Environment(
            xdgRuntimeDir: optional("XDG_RUNTIME_DIR"), xdgDataHome: optional("XDG_DATA_HOME"),
            home: "/home/user", uid: UInt32(c["uid"] ?? "") ?? 0)
        let endpoint = try ServiceEndpoint(
            name: c["name"] ?? "", runtimeDirectory: runtimeDir, environment: environment)
        #expect(endpoint.socketPath == c["socket_path"])
        #expect(endpoint.identityPath == c["identity_path"])
    }

    @Test func fnvExamplesFromTheSpec() {
        #expect(ServiceEndpoint.fnv1a32Hex("/run/user/1000/svc") == "b92d85b8")
        #expect(ServiceEndpoint.fnv1a32Hex("/var/lib/mydaemon") == "a27fa53a")
        #expect(ServiceEndpoint.fnv1a32Hex("") == "811c9dc5")
        #expect(ServiceEndpoint.fnv1a32Hex("/x") == "57d1f0d2")
        #expect(ServiceEndpoint.fnv1a32Hex("/x/") == "3c7e5e47")
        #expect(ServiceEndpoint.fnv1a32Hex("/var/lib/exampled") == "603652b2")
    }

    @Test func invalidNamesAreRejected() {
        let env = ServiceEndpoint.Environment(xdgRuntimeDir: nil, xdgDataHome: nil, home: "/h", uid: 0)
        for name in ["Bad", "", String(repeating: "a", count: 65), "a_b", "a b"] {
            #expect(throws: EndpointMuxError.invalidServiceName(name)) {
                try ServiceEndpoint(name: name, runtimeDirectory: nil, environment: env)
            }
        }
        #expect(throws: Never.self) {
            try ServiceEndpoint(name: String(repeating: "a", count: 64), runtimeDirectory: nil, environment: env)
        }
    }
}
