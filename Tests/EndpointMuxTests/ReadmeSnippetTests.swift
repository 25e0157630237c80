import Foundation
import Testing

/// The README's retrofit example is the compiled `Examples/retrofit/main.swift`.
@Test func readmeShowsTheCompiledRetrofitExample() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let source = try String(contentsOf: root.appendingPathComponent("Examples/retrofit/main.swift"), encoding: .utf8)
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    let parts = source.components(separatedBy: "// snippet:begin\n")
    #expect(parts.count == 2)
    let snippet =
        (parts.last ?? "").components(separatedBy: "// snippet:end").first?
        .trimmingCharacters(in: .newlines) ?? ""
    #expect(snippet.count > 500)
    #expect(
        readme.contains("```swift\n" + snippet + "\n```"),
        "README.md's retrofit example differs from Examples/retrofit/main.swift")
}
