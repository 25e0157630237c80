import Foundation
import Testing

/// Every Swift code block in the README and the DocC articles is a copy of the lines between
/// `// snippet:begin [name]` and `// snippet:end` in a compiled file under `Examples/`
/// (executables of this package, and `Examples/getting-started`, a package of its own that
/// `scripts/getting-started.sh` builds). Editing an example without its copies — or a copy
/// without its example — fails here.
@Suite struct DocSnippetTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Where each snippet must be shown (path relative to the root → snippet names).
    static let placements: [String: [String]] = [
        "README.md": ["package-manifest", "getting-started", "Examples/retrofit/main.swift", "async"],
        "Sources/EndpointMux/EndpointMux.docc/GettingStarted.md": ["package-manifest", "getting-started"],
        "Sources/EndpointMux/EndpointMux.docc/TheControlChannel.md": ["async"],
        "Sources/LegacyAdapters/LegacyAdapters.docc/ChoosingAnAdapter.md": ["async"],
        "Sources/LegacyAdapters/LegacyAdapters.docc/RetrofittingAPollLoop.md": ["Examples/retrofit/main.swift"],
        "Sources/LegacyAdaptersNIO/LegacyAdaptersNIO.docc/RetrofittingASwiftNIOPipeline.md":
            ["nio-handlers", "nio-bootstrap", "nio-async-channel", "nio-async-accept"],
    ]

    /// Snippets by name (an unnamed snippet is named by its file's path).
    static func snippets() throws -> [String: String] {
        var result: [String: String] = [:]
        let examples = root.appendingPathComponent("Examples")
        let files =
            FileManager.default.enumerator(at: examples, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }
            .filter { $0.pathExtension == "swift" && !$0.path.contains("/.build") } ?? []
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            let relative = String(file.path.dropFirst(root.path.count + 1))
            var rest = Substring(text)
            while let begin = rest.range(of: "// snippet:begin") {
                let lineEnd = rest[begin.upperBound...].firstIndex(of: "\n") ?? rest.endIndex
                let name = rest[begin.upperBound..<lineEnd].trimmingCharacters(in: .whitespaces)
                let body = rest[lineEnd...].dropFirst()
                let end = try #require(body.range(of: "// snippet:end"), "\(relative): snippet \(name) has no end")
                let key = name.isEmpty ? relative : name
                #expect(result[key] == nil, "snippet \(key) defined twice")
                result[key] = String(body[..<end.lowerBound]).trimmingCharacters(in: .newlines)
                rest = body[end.upperBound...]
            }
        }
        return result
    }

    /// The bodies of the Swift code blocks of a Markdown file.
    static func swiftBlocks(in markdown: String) -> [String] {
        var blocks: [String] = []
        var current: [Substring]?
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```swift" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    static func documents() -> [String] {
        var documents = ["README.md"]
        for module in ["EndpointMux", "LegacyAdapters", "LegacyAdaptersNIO"] {
            let catalog = "Sources/\(module)/\(module).docc"
            let names =
                (try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(catalog).path)) ?? []
            documents += names.filter { $0.hasSuffix(".md") }.sorted().map { "\(catalog)/\($0)" }
        }
        return documents
    }

    @Test func everySwiftBlockIsACompiledSnippet() throws {
        let snippets = try Self.snippets()
        #expect(snippets.count >= 8, "snippets found: \(snippets.keys.sorted())")
        let bodies = Set(snippets.values)
        var blockCount = 0
        for document in Self.documents() {
            let text = try String(contentsOf: Self.root.appendingPathComponent(document), encoding: .utf8)
            for block in Self.swiftBlocks(in: text) {
                blockCount += 1
                #expect(
                    bodies.contains(block),
                    "\(document): a Swift block is not a snippet of a compiled example: \(block.prefix(120))…")
            }
        }
        #expect(blockCount >= 10)
    }

    @Test func everySnippetIsShownWhereTheDocsNeedIt() throws {
        let snippets = try Self.snippets()
        for (document, names) in Self.placements {
            let blocks = Self.swiftBlocks(
                in: try String(contentsOf: Self.root.appendingPathComponent(document), encoding: .utf8))
            for name in names {
                let snippet = try #require(snippets[name], "no snippet \(name)")
                #expect(snippet.count > 200)
                #expect(blocks.contains(snippet), "\(document) does not show snippet \(name) as it is compiled")
            }
        }
    }

    @Test func swiftBlocksAreFound() {
        let markdown = "text\n```swift\nlet a = 1\n\nlet b = 2\n```\n```sh\nls\n```\n```swift\nx\n```\n"
        #expect(Self.swiftBlocks(in: markdown) == ["let a = 1\n\nlet b = 2", "x"])
    }

    /// Repository paths the README and the articles name in code font (`scripts/docs.sh`,
    /// `Examples/async/main.swift`, …) exist; placeholders (`<Module>`) are skipped.
    @Test func namedRepositoryPathsExist() throws {
        let roots = ["scripts/", "Examples/", "Sources/", "docs/", "Tests/", "Benchmarks/", "Protos/", ".ci/", "Fuzz/"]
        var checked = 0
        for document in Self.documents() {
            let text = try String(contentsOf: Self.root.appendingPathComponent(document), encoding: .utf8)
            let spans = text.split(separator: "`", omittingEmptySubsequences: false).enumerated()
                .filter { $0.offset % 2 == 1 }.map { String($0.element) }
            for span in spans where roots.contains(where: { span.hasPrefix($0) }) {
                let path = span.components(separatedBy: " ")[0].components(separatedBy: "#")[0]
                if path.contains("<") || path.contains("*") { continue }
                checked += 1
                #expect(
                    FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(path).path),
                    "\(document) names \(path), which does not exist")
            }
        }
        #expect(checked >= 20)
    }

    /// Relative links in the README and the articles name files that exist.
    @Test func relativeLinksPointAtFilesThatExist() throws {
        for document in Self.documents() {
            let text = try String(contentsOf: Self.root.appendingPathComponent(document), encoding: .utf8)
            let base = Self.root.appendingPathComponent(document).deletingLastPathComponent()
            var rest = Substring(text)
            while let open = rest.range(of: "](") {
                let after = rest[open.upperBound...]
                guard let close = after.firstIndex(of: ")") else { break }
                let target = String(after[..<close]).components(separatedBy: "#")[0]
                rest = after[close...]
                if target.isEmpty || target.contains("://") || target.hasPrefix("doc:") || target.hasPrefix("mailto:") {
                    continue
                }
                #expect(
                    FileManager.default.fileExists(atPath: base.appendingPathComponent(target).path),
                    "\(document) links to \(target), which does not exist")
            }
        }
    }
}
