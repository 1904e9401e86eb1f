public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `hostmeter run --config F` as a child process, started through `/bin/sh -c` so a test can set
/// what a service manager sets before the agent starts (`umask 000`, `trap '' PIPE` for an ignored
/// SIGPIPE as under systemd): `exec` keeps both, and the pid is the agent's. The child gets the
/// test's environment without anything meant for the agent (`HOSTMETER_*`, systemd's variables).
/// `kill()` (or release) ends it with SIGKILL, so a failed test leaves no agent behind.
public final class AgentChild {
    /// How the agent ended.
    public enum Exit: Equatable, Sendable {
        case exited(Int32)
        case signalled(Int32)
        case stillRunning
    }

    public let process = Process()
    /// Where stderr goes when the test did not give its own descriptor.
    public let stderrFile: URL?

    /// - Parameters:
    ///   - configFile: the configuration `hostmeter run` reads.
    ///   - stderrFile: the file the agent's stderr is written to, unless `stderr` is given.
    ///   - shell: shell commands run before `exec` (e.g. `umask 000`).
    ///   - environment: variables set for the agent on top of the filtered environment.
    ///   - stdout, stderr: descriptors for the agent's standard output and error; by default
    ///     /dev/null and `stderrFile`.
    public init(
        configFile: URL, stderrFile: URL?, shell: String = "", environment: [String: String] = [:],
        stdout: FileHandle? = nil, stderr: FileHandle? = nil
    ) throws {
        var childEnvironment = ProcessInfo.processInfo.environment.filter { name, _ in
            !name.hasPrefix("HOSTMETER_") && !["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"].contains(name)
        }
        childEnvironment["LC_ALL"] = "C"
        // A crash ends the child at once: the runtime's backtracer would otherwise hold its
        // descriptors (and Process's view of it) for as long as it takes, and a test of a crash
        // would hang instead of failing.
        childEnvironment["SWIFT_BACKTRACE"] = "enable=no"
        childEnvironment.merge(environment) { $1 }
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "\(shell)\nexec \"$0\" run --config \"$1\"", TestPaths.hostmeter.path, configFile.path]
        process.environment = childEnvironment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout ?? FileHandle.nullDevice
        guard stderr == nil, let stderrFile else {
            process.standardError = stderr ?? FileHandle.nullDevice
            self.stderrFile = nil
            try process.run()
            return
        }
        FileManager.default.createFile(atPath: stderrFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: stderrFile)
        defer { try? handle.close() }
        process.standardError = handle
        self.stderrFile = stderrFile
        // The child holds its own copy of the descriptor; this one is closed once it runs.
        try process.run()
    }

    /// The agent of `scratch`'s configuration, its stderr in `stderrFile` (the scratch's
    /// stderr.log by default) unless `stderr` is given.
    public convenience init(
        _ scratch: AgentScratch, stderrFile: URL? = nil, shell: String = "", environment: [String: String] = [:],
        stdout: FileHandle? = nil, stderr: FileHandle? = nil
    ) throws {
        try self.init(
            configFile: scratch.configFile, stderrFile: stderrFile ?? scratch.stderrFile, shell: shell,
            environment: environment, stdout: stdout, stderr: stderr)
    }

    deinit { kill() }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    /// The stderr file's content so far; empty when stderr went elsewhere.
    public var stderr: String { stderrFile.flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? "" }

    /// Complete lines only: the agent may be writing the last one.
    public var stderrLines: [String] {
        let text = stderr
        let complete = text.hasSuffix("\n") ? Substring(text) : text[..<(text.lastIndex(of: "\n") ?? text.startIndex)]
        return complete.split(separator: "\n").map(String.init)
    }

    /// Polls the stderr file until `predicate` holds; false at the deadline.
    public func waitForStderr(within seconds: Double, _ predicate: (String) -> Bool) async -> Bool {
        await waitUntil(within: seconds) { predicate(stderr) }
    }

    /// The port from `msg="API listening" api.port=N` in the stderr file, waiting at most 30 s
    /// (less when the agent ends first).
    public func apiPort() async throws -> Int {
        _ = await waitUntil(within: 30) { !isRunning || (try? Self.apiPort(in: stderr)) != nil }
        return try Self.apiPort(in: stderr)
    }

    /// The port `msg="API listening" api.port=N` in `log` names.
    public static func apiPort(in log: String) throws -> Int {
        let pattern = #/msg="API listening" api\.port=([0-9]+)/#
        guard let match = log.firstMatch(of: pattern), let port = Int(match.1) else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "no API port logged:\n\(log)"])
        }
        return port
    }

    /// Sends `signal` (SIGHUP, say) while the agent runs.
    public func signal(_ signal: Int32) {
        if process.isRunning { Glibc.kill(process.processIdentifier, signal) }
    }

    /// How the agent ended, or `.stillRunning` at the deadline.
    public func waitForExit(within seconds: Double) async -> Exit {
        _ = await waitUntil(within: seconds) { !process.isRunning }
        if process.isRunning { return .stillRunning }
        process.waitUntilExit()
        return process.terminationReason == .exit ? .exited(process.terminationStatus) : .signalled(process.terminationStatus)
    }

    /// SIGTERM, then how the agent ended within `seconds`.
    public func terminate(within seconds: Double) async -> Exit {
        signal(SIGTERM)
        return await waitForExit(within: seconds)
    }

    /// SIGKILL if it still runs, and waits for it; safe to call twice.
    public func kill() {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// The agent's `GET /health` on 127.0.0.1:`port` as JSON (answered 200 or 503): whether it says
/// ok, the reasons it gives when not, and the whole object.
public func agentHealth(port: Int) throws -> (ok: Bool, reasons: [String], object: [String: Any]) {
    let object = try LoopbackHTTP.get(port: port, path: "/health").json
    return (object["status"] as? String == "ok", object["reasons"] as? [String] ?? [], object)
}
