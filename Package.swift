// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "EndpointMux",
    products: [
        .library(name: "EndpointMux", targets: ["EndpointMux"]),
        .library(name: "LegacyAdapters", targets: ["LegacyAdapters"]),
        .library(name: "LegacyAdaptersNIO", targets: ["LegacyAdaptersNIO"]),
        .library(name: "EndpointMuxServiceLifecycle", targets: ["EndpointMuxServiceLifecycle"]),
        .executable(name: "muxctl", targets: ["muxctl"]),
        .executable(name: "kvd", targets: ["kvd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // protoc-c output for Protos/*.proto (generated; scripts/generate-protos.sh).
        .target(
            name: "CProtobuf",
            dependencies: ["CProtobufC"],
            cSettings: [
                .define("NDEBUG", .when(configuration: .release)),
                // Includes the system header, or names libprotobuf-c-dev when it is missing.
                .headerSearchPath("missing-library"),
            ]
        ),
        // The system library libprotobuf-c (build: libprotobuf-c-dev; run: libprotobuf-c1).
        .systemLibrary(
            name: "CProtobufC",
            path: "Sources/CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        // CMSG_* macros and other socket helpers that do not import into Swift.
        .target(name: "CSocketShims"),
        // BLAKE3 hash_many with AVX2, chosen at run time (no -mavx2: the functions carry
        // target attributes); the portable Swift code in EndpointMux is the fallback.
        .target(name: "CBLAKE3SIMD"),
        // The sans-IO core: framing, messages, identity, the mux decision.
        .target(name: "EndpointMux", dependencies: ["CProtobuf", "CBLAKE3SIMD"], swiftSettings: strict),
        // What the adapters log (swift-log) and count (swift-metrics); package-level only.
        .target(
            name: "EndpointMuxObservation",
            dependencies: ["EndpointMux", .product(name: "Logging", package: "swift-log"),
                           .product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        // Everything that touches a file descriptor.
        .target(
            name: "LegacyAdapters",
            dependencies: ["EndpointMux", "CSocketShims", "EndpointMuxObservation",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // ServiceServer and BrokerServer as swift-service-lifecycle services (opt-in product).
        .target(
            name: "EndpointMuxServiceLifecycle",
            dependencies: ["LegacyAdapters", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strict
        ),
        // The SwiftNIO front handler; NIO stays out of LegacyAdapters and muxctl.
        .target(
            name: "LegacyAdaptersNIO",
            dependencies: ["EndpointMux", "EndpointMuxObservation", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "muxctl",
            dependencies: [
                "EndpointMux", "LegacyAdapters",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/muxctl",
            swiftSettings: strict
        ),
        // kvd: a legacy line-protocol daemon retrofitted with EndpointMux (the README's example).
        .executableTarget(
            name: "kvd",
            dependencies: [
                "EndpointMux", "LegacyAdapters", "LegacyAdaptersNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/kvd",
            swiftSettings: strict
        ),
        // netbroker: the capability broker of issue 8 (Examples/netbroker).
        .executableTarget(
            name: "netbroker",
            dependencies: [
                "EndpointMux", "LegacyAdapters", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/netbroker",
            swiftSettings: strict
        ),
        // The README's retrofit example, compiled so it cannot rot.
        .executableTarget(
            name: "retrofit-example",
            dependencies: ["EndpointMux", "LegacyAdapters"],
            path: "Examples/retrofit",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The docs' other examples (README, DocC articles), compiled so they cannot rot; each
        // runs briefly with `--self-test` (serves a temporary socket, probes it, exits 0).
        .executableTarget(
            name: "async-example",
            dependencies: ["EndpointMux", "LegacyAdapters"],
            path: "Examples/async",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "nio-bootstrap-example",
            dependencies: [
                "EndpointMux", "LegacyAdapters", "LegacyAdaptersNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Examples/nio-bootstrap",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "nio-async-channel-example",
            dependencies: [
                "EndpointMux", "LegacyAdapters", "LegacyAdaptersNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Examples/nio-async-channel",
            swiftSettings: strict
        ),
        // Examples/getting-started is a package of its own (scripts/getting-started.sh).
        // A ServiceGroup running ServiceServer until SIGTERM (the lifecycle test drives it).
        .executableTarget(
            name: "lifecycle-example",
            dependencies: ["EndpointMux", "LegacyAdapters", "EndpointMuxServiceLifecycle",
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log")],
            path: "Examples/lifecycle",
            swiftSettings: strict
        ),
        .testTarget(name: "EndpointMuxTests", dependencies: ["EndpointMux", "CProtobuf"], swiftSettings: strict),
        .testTarget(name: "LegacyAdaptersTests", dependencies: ["LegacyAdapters", "EndpointMux", "CSocketShims"], swiftSettings: strict),
        .testTarget(
            name: "LegacyAdaptersNIOTests",
            dependencies: [
                "LegacyAdaptersNIO", "EndpointMux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: strict),
        // One table of scripted inputs through every adapter (POSIX driver, AsyncConnection,
        // NIO handler and decoder): the same bytes out, the same events in.
        .testTarget(
            name: "AdapterParityTests",
            dependencies: [
                "EndpointMux", "LegacyAdapters", "LegacyAdaptersNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict),
        // swift-log / swift-metrics / swift-service-lifecycle over real unix sockets.
        .testTarget(
            name: "ObservabilityTests",
            dependencies: [
                "EndpointMux", "LegacyAdapters", "LegacyAdaptersNIO", "EndpointMuxServiceLifecycle",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict),
        // Real peers: running-process from PyPI and the release muxctl (scripts/test.sh prepares both).
        .testTarget(
            name: "InteropTests", dependencies: ["EndpointMux", "LegacyAdapters"],
            exclude: ["Python"], swiftSettings: strict),
    ]
)
