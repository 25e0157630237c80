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
        .executable(name: "muxctl", targets: ["muxctl"]),
        .executable(name: "kvd", targets: ["kvd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
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
        // Everything that touches a file descriptor.
        .target(
            name: "LegacyAdapters",
            dependencies: ["EndpointMux", "CSocketShims"],
            swiftSettings: strict
        ),
        // The SwiftNIO front handler; NIO stays out of LegacyAdapters and muxctl.
        .target(
            name: "LegacyAdaptersNIO",
            dependencies: ["EndpointMux", .product(name: "NIOCore", package: "swift-nio")],
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
        // Real peers: running-process from PyPI and the release muxctl (scripts/test.sh prepares both).
        .testTarget(
            name: "InteropTests", dependencies: ["EndpointMux", "LegacyAdapters"],
            exclude: ["Python"], swiftSettings: strict),
    ]
)
