import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 16's alias bomb against the real `hostmeter` binary: 442 bytes of nested YAML aliases,
/// the last used as a mapping key, which Yams' composer alone spends minutes on. In
/// `instances_dir` it is a problem naming the file and line while sampling keeps its cadence and
/// SIGTERM stops the agent at once; as the configuration it is refused at once, at start and on
/// SIGHUP. Every wait has a deadline, so the unfixed agent fails these tests instead of hanging them.
@Suite(.serialized, .timeLimit(.minutes(3))) struct AliasBombTests {
    typealias Agent = InstanceKernelAgent

    static func fixture(_ target: String) throws -> String {
        try String(
            contentsOf: FuzzInput(harness: "agent", target: target, name: "alias-bomb-as-mapping-key").url,
            encoding: .utf8)
    }

    @Test func aBombInInstancesDirStopsNeitherSamplingNorSIGTERM() async throws {
        let agent = try Agent(hostEnabled: true)
        defer { agent.remove() }
        try agent.writeManifest("vm-good", "user_id: alice\ninterfaces: [lo]\n")
        let bombFile = agent.instancesDirectory.appendingPathComponent("vm-bomb.yaml")
        try Self.fixture("instance_manifest_file").write(to: bombFile, atomically: true, encoding: .utf8)
        try await agent.start()

        // One sample a second: eight seconds bring at least six (the agent's own count, so a test
        // thread that a busy machine holds back does not miss any).
        #expect(try await agent.wait(within: 30) { try Self.samplesTaken(agent) != nil }, "stderr:\n\(agent.stderr)")
        let first = try #require(try Self.samplesTaken(agent))
        try await Task.sleep(for: .seconds(8))
        let last = try #require(try Self.samplesTaken(agent))
        #expect(last - first >= 6, "\(last - first) samples in 8 s; stderr:\n\(agent.stderr)")

        let listing = try agent.get("/instances").json
        let problems = try #require(listing["problems"] as? [[String: Any]], "\(listing)")
        #expect(problems.count == 1)
        #expect(problems.first?["file"] as? String == bombFile.path)
        let message = problems.first?["message"] as? String ?? ""
        #expect(message.hasPrefix("line 3: an anchor (&a) at column 4: YAML anchors and aliases are not allowed"), "\(message)")
        let instances = try #require(listing["instances"] as? [[String: Any]])
        #expect(instances.map { $0["instance_id"] as? String } == ["vm-good"])
        #expect(instances.first?["running"] as? Bool == true, "\(instances)")
        #expect(agent.stderr.contains("msg=\"instance manifest refused; the other instances are metered\""))

        let stopping = ContinuousClock.now
        #expect(await agent.terminate(within: 15) == .exited(0), "stderr:\n\(agent.stderr)")
        #expect(ContinuousClock.now - stopping < .seconds(12))
    }

    /// `hostmeter_samples_total` from /metrics; nil before the first sample.
    static func samplesTaken(_ agent: Agent) throws -> Int? {
        let metrics = try agent.get("/metrics").body
        guard let line = metrics.split(separator: "\n").first(where: { $0.hasPrefix("hostmeter_samples_total ") }),
            let value = Double(line.dropFirst("hostmeter_samples_total ".count)), value > 0
        else { return nil }
        return Int(value)
    }

    @Test func aBombConfigurationIsRefusedAtOnceNamingFileAndLine() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostmeter-bomb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("hostmeter.yaml")
        try (try Self.fixture("config") + "state_dir: \(directory.path)/state\n").write(to: file, atomically: true, encoding: .utf8)

        for arguments in [["config", "check", file.path], ["run", "--config", file.path]] {
            let started = ContinuousClock.now
            let result = try run(TestPaths.hostmeter, arguments, timeout: 30)
            #expect(ContinuousClock.now - started < .seconds(10), "\(arguments)")
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("\(file.path):2: an anchor (&a) at column 4"), "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("YAML anchors and aliases are not allowed"), "\(arguments): \(result.stderr)")
        }
    }

    @Test func aSIGHUPWithABombConfigurationIsRefusedAndSamplingGoesOn() async throws {
        let agent = try Agent(hostEnabled: true)
        defer { agent.remove() }
        try await agent.start()
        #expect(try await agent.wait(within: 30) { try agent.sampledAt() != nil }, "stderr:\n\(agent.stderr)")

        let good = try String(contentsOf: agent.configFile, encoding: .utf8)
        try (try Self.fixture("config") + good.replacingOccurrences(of: "interval_seconds: 2\n", with: ""))
            .write(to: agent.configFile, atomically: true, encoding: .utf8)
        agent.signal(SIGHUP)
        #expect(
            try await agent.wait(within: 10) { agent.stderr.contains("configuration reload refused") },
            "stderr:\n\(agent.stderr)")
        let refusal = agent.stderr.split(separator: "\n").first { $0.contains("configuration reload refused") } ?? ""
        #expect(refusal.contains("YAML anchors and aliases are not allowed"), "\(refusal)")

        let refusedAt = Date().timeIntervalSince1970
        #expect(try await agent.waitForSample(atOrAfter: refusedAt + 1, within: 10), "no sample after the refused reload")
        #expect(await agent.terminate(within: 15) == .exited(0), "stderr:\n\(agent.stderr)")
    }
}
