import Foundation
import TestSupport
import Testing

@testable import Probes

/// The kernel fixture trees under Tests/Fixtures, read from the source tree (TestSupport finds it).
enum Fixtures {
    /// Tests/Fixtures.
    static let root = TestPaths.fixtures.path

    /// The tree captured from a real machine; `uname -r` is in its UNAME file.
    static let linux618 = root + "/linux-6.18.44-fc-v509"
    static let linux618Proc = linux618 + "/proc"
    static let linux618Sys = linux618 + "/sys"

    /// Every file present, every one broken.
    static let garbageProc = root + "/garbage/proc"
    /// cpu, memory, network, boot and mounts good; diskstats and loadavg broken; uptime missing.
    static let partialProc = root + "/partial/proc"
}

/// A scratch directory tree for one test, removed when the value is dropped.
final class TemporaryTree {
    let root: String

    init() throws {
        root = FileManager.default.temporaryDirectory
            .appendingPathComponent("hostmeter-probes-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Writes `text` at `relative`, creating the folders above it.
    func write(_ relative: String, _ text: String) throws {
        let path = root + "/" + relative
        let folder = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// Creates the folder `relative` and the folders above it.
    func makeDirectory(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: root + "/" + relative, withIntermediateDirectories: true)
    }
}

/// Checks that `body` throws `ProbeError.malformed` naming `path` and `line`, and that the message
/// starts with them the way an editor jumps to a location ("/proc/meminfo:2: …", or "/proc/stat: …"
/// for line 0). The reason text is left free so it can be reworded.
func expectMalformed<Value>(
    path expectedPath: String, line expectedLine: Int,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws(ProbeError) -> Value
) {
    do throws(ProbeError) {
        let value = try body()
        Issue.record(
            "expected .malformed at \(expectedPath):\(expectedLine), parsed \(value)", sourceLocation: sourceLocation)
    } catch {
        guard case .malformed(let path, let line, _) = error else {
            Issue.record("expected .malformed, got \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(path == expectedPath, sourceLocation: sourceLocation)
        #expect(line == expectedLine, sourceLocation: sourceLocation)
        let location = expectedLine > 0 ? "\(expectedPath):\(expectedLine): " : "\(expectedPath): "
        #expect(error.description.hasPrefix(location), "\(error.description)", sourceLocation: sourceLocation)
    }
}
