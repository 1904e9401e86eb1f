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
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
    ],
    targets: [
        .target(name: "UsageModel", swiftSettings: swiftSettings),
        .target(name: "Probes", swiftSettings: swiftSettings),
        .executableTarget(
            name: "hostmeter",
            dependencies: [
                "Probes",
                "UsageModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "hostmeter-bench",
            dependencies: [
                "Probes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ProbesTests",
            dependencies: ["Probes"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "hostmeterTests",
            dependencies: ["hostmeter"],
            exclude: ["psutil_reader.py"],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
