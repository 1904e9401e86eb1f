// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "hostmeter",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hostmeter", targets: ["hostmeter"]),
        .executable(name: "hostmeter-bench", targets: ["hostmeter-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams.git", "5.0.1"..<"7.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "UsageModel",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                // PKCS #8 and SPKI PEM of Ed25519 keys (the agent's identity key file).
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "Probes", swiftSettings: swiftSettings),
        .target(name: "CNVML"),
        // The NATS C client (JetStream publish for `sink.type: nats`), from Debian's libnats-dev.
        .systemLibrary(name: "CNATS", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        // librdkafka (the idempotent producer of `sink.type: kafka`), from Debian's librdkafka-dev.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .target(name: "GPU", dependencies: ["CNVML", "Probes"], swiftSettings: swiftSettings),
        .target(name: "Metering", dependencies: ["Probes", "UsageModel"], swiftSettings: swiftSettings),
        .target(
            name: "Outbox",
            dependencies: ["UsageModel", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Shipping",
            dependencies: [
                "CNATS", "CRdKafka", "EventThreads", "Outbox", "UsageModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "InputGuards", swiftSettings: swiftSettings),
        .target(name: "EventThreads", swiftSettings: swiftSettings),
        .target(
            name: "RuntimeState",
            dependencies: [
                "Metering", "Outbox", "Probes", "Shipping", "UsageModel",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "AgentAPI",
            dependencies: [
                "InputGuards", "Metering", "Outbox", "RuntimeState", "UsageModel",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HostMeterAgent",
            dependencies: [
                "AgentAPI", "EventThreads", "GPU", "InputGuards", "Probes", "Metering", "Outbox", "RuntimeState", "Shipping", "UsageModel",
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "hostmeter",
            dependencies: [
                "HostMeterAgent", "Probes", "Metering", "Outbox", "Shipping", "UsageModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "hostmeter-bench",
            dependencies: [
                "AgentAPI", "CNATS", "CRdKafka", "GPU", "HostMeterAgent", "Probes", "Metering", "Outbox", "RuntimeState", "Shipping", "UsageModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The tests' shared helpers (kernel fixtures, the agent as a child process, loopback HTTP,
        // the schema validator, the fuzz inputs), one copy for every test target; a plain target
        // under Tests/ so that nothing in Sources can link it.
        .target(
            name: "TestSupport",
            dependencies: [
                "CNATS", "Probes", "UsageModel",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ProbesTests",
            dependencies: ["Probes", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GPUTests",
            dependencies: ["GPU", "Metering", "Probes"],
            exclude: ["FakeNVML"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UsageModelTests",
            dependencies: ["UsageModel", "TestSupport", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MeteringTests",
            dependencies: [
                "Metering", "Probes", "TestSupport", "UsageModel",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ShippingTests",
            dependencies: [
                "EventThreads", "Shipping", "Outbox", "TestSupport", "UsageModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AgentAPITests",
            dependencies: [
                "AgentAPI", "HostMeterAgent", "InputGuards", "Metering", "Outbox", "Probes", "RuntimeState", "Shipping",
                "TestSupport", "UsageModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OutboxTests",
            dependencies: ["Outbox", "TestSupport", "UsageModel", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HostMeterAgentTests",
            dependencies: [
                "AgentAPI", "EventThreads", "HostMeterAgent", "InputGuards", "Metering", "Outbox", "Probes", "RuntimeState", "Shipping", "TestSupport",
                "UsageModel",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The tests that run the real `hostmeter` binary as a child process.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "hostmeter", "Outbox", "Probes", "TestSupport", "UsageModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            exclude: ["psutil_reader.py"],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
