import Foundation
import GPU
import Probes
import Synchronization

/// A fake libnvidia-ml built from FakeNVML/fake_nvml.c into a directory of its own, so that each
/// test loads its own copy (dlopen of one path twice would share one) and has its own script.
struct FakeNVML {
    let directory: URL
    let libraryPath: String

    static let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("FakeNVML/fake_nvml.c")

    /// Compiles the fake with `defines` (FAKE_NO_V2, FAKE_OMIT_<symbol>) and writes `script`.
    init(defines: [String] = [], script: String = "") throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hostmeter-fake-nvml-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        libraryPath = directory.appendingPathComponent("libnvidia-ml.so.1").path
        let compiler = Process()
        compiler.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        compiler.arguments = ["cc", "-shared", "-fPIC", "-O1", "-o", libraryPath, Self.source.path]
            + defines.map { "-D\($0)" }
        let errors = Pipe()
        compiler.standardError = errors
        try compiler.run()
        let diagnostics = errors.fileHandleForReading.readDataToEndOfFile()
        compiler.waitUntilExit()
        guard compiler.terminationStatus == 0 else {
            throw FakeNVMLError.compileFailed(String(decoding: diagnostics, as: UTF8.self))
        }
        try write(script)
    }

    /// Replaces the script; the fake reads it again at every call.
    func write(_ script: String) throws {
        try script.write(toFile: libraryPath + ".script", atomically: true, encoding: .utf8)
    }

    /// The calls the fake logged (nvmlShutdown).
    func calls() -> [String] {
        guard let text = try? String(contentsOfFile: libraryPath + ".calls", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    /// Loads the fake, failing the test with what went wrong otherwise.
    func load() throws -> NVMLLibrary {
        switch NVMLLibrary.load(path: libraryPath) {
        case .loaded(let library): return library
        case .noNVML(let reason): throw FakeNVMLError.notLoaded(reason)
        case .failed(let error): throw error
        }
    }
}

enum FakeNVMLError: Error {
    case compileFailed(String)
    case notLoaded(String)
}

/// A clock the test moves: wall and boot time advance together unless a test steps the wall clock.
final class TestClock: Sendable {
    static let startWallNanos: Int64 = 1_700_000_000 * 1_000_000_000
    static let startBootNanos: UInt64 = 1_000 * 1_000_000_000

    private let time = Mutex(SampleTime(wallNanos: startWallNanos, bootNanos: startBootNanos))

    var clock: HostClock { HostClock { [self] in self.now } }

    func advance(seconds: Double) { advance(nanoseconds: UInt64((seconds * 1e9).rounded())) }

    func advance(nanoseconds nanos: UInt64) {
        time.withLock {
            $0.wallNanos += Int64(nanos)
            $0.bootNanos += nanos
        }
    }

    func stepWall(bySeconds seconds: Int64) {
        time.withLock { $0.wallNanos += seconds * 1_000_000_000 }
    }

    var now: SampleTime { time.withLock { $0 } }
}

/// "ts:value ts:value …" for evenly spaced samples, as a "samples" line of the script takes them.
func sampleEntries(from start: UInt64, every step: UInt64, values: [Double]) -> String {
    values.enumerated().map { offset, value in
        "\(start + UInt64(offset) * step):\(value == value.rounded() ? String(Int(value)) : String(value))"
    }.joined(separator: " ")
}
