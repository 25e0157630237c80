// swift-tools-version: 6.1
// libFuzzer targets for EndpointMux (not built by the main package or CI):
//   scripts/fuzz.sh frameview 60    # FrameView vs libprotobuf-c, differential
//   scripts/fuzz.sh control 60      # MuxSession control path: split vs whole, never crash
//   scripts/fuzz.sh broker 60       # broker request decoding: decode or typed error, round trips
import PackageDescription

let package = Package(
    name: "EndpointMuxFuzz",
    dependencies: [.package(name: "EndpointMux", path: "..")],
    targets: [
        .executableTarget(
            name: "fuzz-frameview",
            dependencies: [.product(name: "EndpointMux", package: "EndpointMux")],
            swiftSettings: [.swiftLanguageMode(.v6), .unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "fuzz-control",
            dependencies: [.product(name: "EndpointMux", package: "EndpointMux")],
            swiftSettings: [.swiftLanguageMode(.v6), .unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "fuzz-broker",
            dependencies: [.product(name: "EndpointMux", package: "EndpointMux")],
            swiftSettings: [.swiftLanguageMode(.v6), .unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
