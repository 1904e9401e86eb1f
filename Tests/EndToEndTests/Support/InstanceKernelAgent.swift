import Foundation
import TestSupport

/// `hostmeter run` for InstanceKernelTests, in a scratch directory of its own: periods of 2 s
/// sampled every second, instances sampled every second from the scratch's instances directory,
/// GPUs off, the API on a free loopback port. Killed and its directory removed on `remove()` or
/// release.
final class InstanceKernelAgent {
    typealias Exit = AgentChild.Exit
    typealias Response = LoopbackHTTP.Response

    static let intervalSeconds: Int64 = 2

    let scratch: AgentScratch
    private var child: AgentChild?
    private(set) var port = 0

    var configFile: URL { scratch.configFile }
    var stateDirectory: URL { scratch.stateDirectory }
    var instancesDirectory: URL { scratch.instancesDirectory }
    var eventsFile: URL { scratch.eventsFile }

    /// Makes the directory and writes the configuration; `hostEnabled` keeps host mode on beside
    /// the instances.
    init(hostEnabled: Bool) throws {
        scratch = try AgentScratch(prefix: "hostmeter-instance-kernel")
        try FileManager.default.createDirectory(at: scratch.instancesDirectory, withIntermediateDirectories: true)
        try scratch.writeConfig(
            hostID: "instance-kernel-test", intervalSeconds: Int(Self.intervalSeconds), logLevel: "info",
            """
            instance_sample_seconds: 1
            instances_dir: \(scratch.instancesDirectory.path)
            host:
              enabled: \(hostEnabled)
            gpu:
              enabled: false
            """)
    }

    deinit { remove() }

    /// Writes a manifest into instances_dir as `<instance_id>.yaml`; its path.
    @discardableResult
    func writeManifest(_ id: String, _ body: String) throws -> URL { try scratch.writeManifest(id, body) }

    /// Starts the agent and waits (at most 30 s) for the port it logs.
    func start() async throws {
        let child = try AgentChild(scratch)
        self.child = child
        port = try await child.apiPort()
    }

    /// Writes the manifest of `id` (user u-burn, org o-burn, one vCPU) metering `cgroup`, puts
    /// `burner` (still stopped) into the cgroup, starts the agent and waits (at most 15 s) until it
    /// reports the instance running; the manifest's path.
    @discardableResult
    func startMetering(_ id: String, cgroup: TemporaryCgroup, burner: StoppedChild) async throws -> URL {
        let manifest = try writeManifest(id, "user_id: u-burn\norg_id: o-burn\ncgroup: \(cgroup.relativePath)\nvcpus: 1\n")
        try cgroup.add(burner.pid)
        try await start()
        guard try await wait(within: 15, until: { try get("/instances/\(id)").json["running"] as? Bool == true }) else {
            throw TestSupportError("\(id) never ran; stderr:\n\(stderr)")
        }
        return manifest
    }

    var isRunning: Bool { child?.isRunning ?? false }

    /// Sends `signal` (SIGHUP, say) to the running agent.
    func signal(_ signal: Int32) { child?.signal(signal) }

    var stderr: String { child?.stderr ?? "" }

    /// GET `path` on the agent's API.
    func get(_ path: String) throws -> Response { try LoopbackHTTP.get(port: port, path: path) }

    /// `sampled_at` of `GET /get`: when the agent last sampled; nil before its first sample.
    func sampledAt() throws -> Double? { try get("/get").json["sampled_at"] as? Double }

    /// Polls `condition` every 100 ms for at most `seconds`; whether it came true.
    func wait(within seconds: Double, until condition: () throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        } while Date() < deadline
        return try condition()
    }

    /// Waits (at most `seconds`) for a sample taken at or after the wall-clock time `time`.
    func waitForSample(atOrAfter time: Double, within seconds: Double) async throws -> Bool {
        try await wait(within: seconds) { (try sampledAt() ?? 0) >= time }
    }

    /// SIGTERM, then how the agent ended within `seconds`.
    func terminate(within seconds: Double) async -> Exit {
        guard let child else { return .stillRunning }
        return await child.terminate(within: seconds)
    }

    /// SIGKILL if it still runs, and the directory removed.
    func remove() {
        child?.kill()
        scratch.remove()
    }
}
