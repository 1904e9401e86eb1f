import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The result of running a program to completion.
struct ProcessResult {
    var status: Int32
    var stdout: Data
    var stderr: String
}

enum TestPaths {
    /// The package root, from this file's place in Tests/hostmeterTests/Support.
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static let probeFixtures = packageRoot.appendingPathComponent("Tests/ProbesTests/Fixtures")

    /// The `hostmeter` binary built beside the test bundle (`TEST_HOSTMETER_BIN` overrides).
    static var hostmeter: URL {
        if let override = ProcessInfo.processInfo.environment["TEST_HOSTMETER_BIN"] {
            return URL(fileURLWithPath: override)
        }
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return testBinary.deletingLastPathComponent().appendingPathComponent("hostmeter")
    }
}

/// Runs `executable` with `arguments`, feeding no input, with a hard time limit. Output goes to
/// temporary files rather than pipes, so a chatty child cannot block on a full pipe and a hung
/// one is killed at the deadline.
func run(_ executable: URL, _ arguments: [String], timeout: TimeInterval = 60) throws -> ProcessResult {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostmeter-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let outURL = directory.appendingPathComponent("stdout")
    let errURL = directory.appendingPathComponent("stderr")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    defer {
        try? out.close()
        try? err.close()
    }

    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning, Date() < deadline {
        Thread.sleep(forTimeInterval: 0.01)
    }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
    }
    process.waitUntilExit()
    return ProcessResult(
        status: process.terminationStatus, stdout: try Data(contentsOf: outURL),
        stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
}

func hostmeter(_ arguments: String...) throws -> ProcessResult {
    try run(TestPaths.hostmeter, arguments)
}

func jsonObject(_ data: Data) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw CocoaError(.coderReadCorrupt)
    }
    return object
}
