// swift-tools-version: 6.1
// A package outside the SDK that depends on it by path, as an adopter's would: it builds
// and runs the README's getting-started example (`scripts/getting-started.sh`). The lines
// between the snippet markers are the README's and the Getting Started article's copy.
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
