public import Foundation

/// Where the tests find the package's files and the `hostmeter` binary. The test targets read
/// their fixtures from the source tree rather than from bundles: the trees hold symbolic links
/// and files named like kernel paths, which resource copying would not keep as they are.
public enum TestPaths {
    /// The package root, from this file's place in Tests/TestSupport.
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Tests/Fixtures: the captured kernel and cgroup trees, and the kept fuzz inputs under `fuzz/`.
    public static let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures")

    /// A file or folder of the package, by its path from the root ("docs/CONFIG.md").
    public static func file(_ relative: String) -> URL { packageRoot.appendingPathComponent(relative) }

    /// The `hostmeter` binary built beside the test bundle (`TEST_HOSTMETER_BIN` overrides).
    public static var hostmeter: URL {
        if let override = ProcessInfo.processInfo.environment["TEST_HOSTMETER_BIN"] {
            return URL(fileURLWithPath: override)
        }
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return testBinary.deletingLastPathComponent().appendingPathComponent("hostmeter")
    }
}

/// A failure of a test helper, with what went wrong in words.
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }
}
