// swift-tools-version: 6.1
// Release-mode benchmarks for EndpointMux: `swift run -c release mux-bench`.
// A separate package so the main package's build and tests never compile it.
import PackageDescription

let package = Package(
    name: "EndpointMuxBenchmarks",
    products: [
        .executable(name: "mux-bench", targets: ["mux-bench"]),
        .executable(name: "mux-load", targets: ["mux-load"]),
    ],
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
        // mux-load's same-run baseline (a plain epoll echo server for v1 frames and for lines)
        // and its process helpers (children that die with it, RLIMIT_NOFILE, CPU pinning).
        .target(name: "CEchoServer"),
        // End-to-end load on muxctl serve and kvd (release builds of the main package) beside
        // the C baseline; needs no EndpointMux module (it hand-encodes its v1 frames).
        .executableTarget(
            name: "mux-load",
            dependencies: ["CEchoServer"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
