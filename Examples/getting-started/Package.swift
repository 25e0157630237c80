// swift-tools-version: 6.1
// A package outside the SDK that depends on it by path, as an adopter's would: it builds
// and runs the README's getting-started example (`scripts/getting-started.sh`). The lines
// between the snippet markers are the README's and the Getting Started article's copy.
// It also builds the docs' other examples (Sources/* are symbolic links to Examples/*):
// from outside the SDK only its public API is visible, so an example that needs a
// `package` or internal declaration fails here even though it compiles inside the SDK.
import PackageDescription

// snippet:begin package-manifest
let package = Package(
    name: "getting-started",
    dependencies: [
        // A clone next to your package; or .package(url: "<the repository's URL>", from: "0.1.0").
        .package(name: "EndpointMux", path: "../..")
    ],
    targets: [
        .executableTarget(
            name: "getting-started",
            dependencies: [
                .product(name: "EndpointMux", package: "EndpointMux"),
                .product(name: "LegacyAdapters", package: "EndpointMux"),
            ]
        )
    ]
)
// snippet:end

package.dependencies.append(.package(url: "https://github.com/apple/swift-nio", from: "2.101.2"))
package.targets +=
    ["retrofit-example", "async-example"].map { name in
        .executableTarget(
            name: name,
            dependencies: [
                .product(name: "EndpointMux", package: "EndpointMux"),
                .product(name: "LegacyAdapters", package: "EndpointMux"),
            ],
            path: "Sources/\(name)"
        )
    }
    + ["nio-bootstrap-example", "nio-async-channel-example"].map { name in
        .executableTarget(
            name: name,
            dependencies: [
                .product(name: "EndpointMux", package: "EndpointMux"),
                .product(name: "LegacyAdapters", package: "EndpointMux"),
                .product(name: "LegacyAdaptersNIO", package: "EndpointMux"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/\(name)"
        )
    }
