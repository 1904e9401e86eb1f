public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The result of running a program to completion.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: String
}

/// Runs `executable` with `arguments`, feeding no input, with a hard time limit. Output goes to
/// temporary files rather than pipes, so a chatty child cannot block on a full pipe and a hung
/// one is killed at the deadline.
public func run(_ executable: URL, _ arguments: [String], timeout: TimeInterval = 60) throws -> ProcessResult {
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

/// `hostmeter ARGUMENTS…` run to completion (at most 60 s).
public func hostmeter(_ arguments: String...) throws -> ProcessResult {
    try run(TestPaths.hostmeter, arguments)
}

/// `data` as a JSON object; an error when it is anything else.
public func jsonObject(_ data: Data) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw CocoaError(.coderReadCorrupt)
    }
    return object
}

/// Polls `condition` every 50 ms until it holds or `seconds` pass; whether it held. A condition
/// that throws counts as not holding yet.
public func waitUntil(within seconds: Double, _ condition: () async throws -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(50))
    } while Date() < deadline
    return (try? await condition()) == true
}
