public import Foundation
public import UsageModel

/// A scratch directory for one `hostmeter run`: its configuration file, state directory (the
/// database and the file sink's events.jsonl), instances directory and stderr log. Removed by
/// `remove()`.
public struct AgentScratch: Sendable {
    public let directory: URL

    /// Makes an empty directory under the temporary directory; `prefix` starts its name.
    public init(prefix: String = "hostmeter-child") throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    public var configFile: URL { directory.appendingPathComponent("hostmeter.yaml") }
    public var stateDirectory: URL { directory.appendingPathComponent("state") }
    public var instancesDirectory: URL { directory.appendingPathComponent("instances") }
    public var stderrFile: URL { directory.appendingPathComponent("stderr.log") }
    /// The default file sink's output in the default state directory.
    public var eventsFile: URL { stateDirectory.appendingPathComponent("events.jsonl") }
    /// The agent's database in the default state directory.
    public var databaseFile: URL { stateDirectory.appendingPathComponent("hostmeter.sqlite") }

    /// Writes `host_id`, a period of `intervalSeconds` sampled every second, the API on a free
    /// loopback port and `state_dir` (`stateDirectory`, else the scratch's), the log level when one
    /// is given, then `extra` (YAML at the top level, naming none of those keys).
    public func writeConfig(
        hostID: String = "child-test", intervalSeconds: Int = 1, stateDirectory: URL? = nil, logLevel: String? = nil,
        _ extra: String = ""
    ) throws {
        let log = logLevel.map { "log:\n  level: \($0)\n" } ?? ""
        try """
            host_id: \(hostID)
            interval_seconds: \(intervalSeconds)
            sample_seconds: 1
            state_dir: \((stateDirectory ?? self.stateDirectory).path)
            api:
              listen: 127.0.0.1:0
            \(log)\(extra)
            """.write(to: configFile, atomically: true, encoding: .utf8)
    }

    /// Writes a manifest into the instances directory as `<instance_id>.yaml`; its path.
    @discardableResult
    public func writeManifest(_ id: String, _ body: String) throws -> URL {
        try FileManager.default.createDirectory(at: instancesDirectory, withIntermediateDirectories: true)
        let file = instancesDirectory.appendingPathComponent("\(id).yaml")
        try "instance_id: \(id)\n\(body)".write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    /// The file sink's events, each decoded as a `UsageEvent`.
    public func deliveredEvents() throws -> [UsageEvent] {
        let text = try String(contentsOf: eventsFile, encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(UsageEvent.self, from: Data($0.utf8)) }
    }

    /// Removes the directory, with whatever a test left in it.
    public func remove() {
        // A test may leave a directory without write permission behind.
        _ = try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
        try? FileManager.default.removeItem(at: directory)
    }
}
