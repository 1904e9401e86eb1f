import Foundation

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

    /// The `hostmeter` binary built beside the test bundle (`HOSTMETER_BIN` overrides).
    static var hostmeter: URL {
        if let override = ProcessInfo.processInfo.environment["HOSTMETER_BIN"] {
            return URL(fileURLWithPath: override)
        }
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return testBinary.deletingLastPathComponent().appendingPathComponent("hostmeter")
    }
}

/// Runs `executable` with `arguments`, feeding no input, with a hard time limit.
func run(_ executable: URL, _ arguments: [String], timeout: TimeInterval = 60) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    // Read both pipes fully (a full pipe would block the child), then reap it.
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    while process.isRunning {
        if Date() > deadline {
            process.terminate()
            break
        }
        Thread.sleep(forTimeInterval: 0.01)
    }
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: outData, stderr: String(decoding: errData, as: UTF8.self))
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
