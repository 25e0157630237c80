// swift-tools-version: 6.1
// Release-mode benchmarks for EndpointMux: `swift run -c release mux-bench`.
// A separate package so the main package's build and tests never compile it.
import PackageDescription

let package = Package(
    name: "EndpointMuxBenchmarks",
    products: [.executable(name: "mux-bench", targets: ["mux-bench"])],
    dependencies: [.package(name: "EndpointMux", path: "..")],
    targets: [
        // Counts calls into the allocator by interposing malloc and friends (glibc).
        .target(name: "CMallocCounter"),
        // libprotobuf-c packing a Frame into a preallocated buffer: the encoders' same-run baseline.
        .target(name: "CPackBaseline", cSettings: [.define("NDEBUG")], linkerSettings: [.linkedLibrary("protobuf-c")]),
        .executableTarget(
            name: "mux-bench",
            dependencies: [.product(name: "EndpointMux", package: "EndpointMux"), "CMallocCounter", "CPackBaseline"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
