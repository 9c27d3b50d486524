// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Doorman",
    platforms: [.macOS(.v15), .iOS(.v16)],
    products: [
        .executable(name: "doorman", targets: ["DoormanCLI"]),
        .library(name: "DoormanClient", targets: ["DoormanClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // Header shim for epoll, eventfd, accept4 and friends.
        .target(name: "CLinux"),
        // System libraries: OpenSSL (libssl-dev), zlib (zlib1g-dev), SQLite (libsqlite3-dev) and libpq (libpq-dev).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // Pure codecs: HTTP/1.1 request head, handshake, RFC 6455 frames, UTF-8. stdlib only.
        .target(name: "WireCodec", swiftSettings: strict),
        // permessage-deflate (RFC 7692): negotiated parameters, inflater/deflater with hard limits.
        .target(name: "WireDeflate", dependencies: ["WireCodec", "CZlib"], swiftSettings: strict),
        // One epoll thread per loop; sockets, write helpers, timers, TLS over memory BIOs. Bytes only.
        .target(
            name: "Transport",
            dependencies: ["CLinux", "COpenSSL", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // HTTP + WebSocket connections on a loop.
        .target(
            name: "WebSocketServer",
            dependencies: ["WireCodec", "WireDeflate", "Transport", "CLinux", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Pure domain: key format and digest, rules and rights, the model, the store interface.
        .target(name: "GatewayCore", dependencies: ["COpenSSL"], swiftSettings: strict),
        // SQLite and PostgreSQL stores: migrations, transactions, the change feed.
        .target(
            name: "GatewayStore",
            dependencies: ["GatewayCore", "CSQLite", "CLibPQ", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Wiring: configuration, routes, session handlers.
        .target(
            name: "Gateway",
            dependencies: ["WireCodec", "WebSocketServer", "Transport", "GatewayCore", "GatewayStore",
                           .product(name: "Logging", package: "swift-log")],
            exclude: ["AdminPage/assets"],
            swiftSettings: strict),
        .executableTarget(
            name: "DoormanCLI",
            dependencies: [
                "Gateway", "GatewayCore", "GatewayStore", "Transport", "CLinux", "DoormanClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // The Swift client library for apps (Linux and Apple platforms): WireCodec over POSIX sockets.
        // wss:// on Linux through the system's OpenSSL; Apple platforms build without it.
        .target(name: "DoormanClient", dependencies: ["WireCodec", .target(name: "COpenSSL", condition: .when(platforms: [.linux]))],
                swiftSettings: strict),
        // Helpers shared by test targets (the openssl command for test certificates, a private PostgreSQL server).
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "WireCodecTests", dependencies: ["WireCodec", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "WireDeflateTests", dependencies: ["WireDeflate", "WireCodec"], swiftSettings: strict),
        .testTarget(name: "DoormanClientTests", dependencies: ["DoormanClient", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "GatewayCoreTests", dependencies: ["GatewayCore", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "GatewayStoreTests", dependencies: ["GatewayStore", "GatewayCore", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "CLinux", "COpenSSL", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "WebSocketServerTests",
            dependencies: ["WebSocketServer", "WireCodec", "WireDeflate", "Transport", "Gateway", "GatewayCore", "GatewayStore", "CLinux", "COpenSSL", "TestSupport"],
            swiftSettings: strict),
    ]
)
