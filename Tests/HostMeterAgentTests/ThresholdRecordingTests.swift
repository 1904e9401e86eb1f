import Foundation
import HostMeterAgent
import Metering
import Outbox
import Probes
import Synchronization
import TestSupport
import Testing
import UsageModel

/// Threshold alerts go through the real recorder: evaluated on each closed period, stored in the
/// outbox and their state in the database in the period's transaction, and carried over a restart.
@Suite struct ThresholdRecordingTests {
    static let fixture = TestPaths.fixtures.appendingPathComponent("linux-6.18.44-fc-v509")

    /// A clock that moves one second per sample, from a fixed wall time on a period boundary.
    final class SteppingClock: Sendable {
        let step = Mutex<Int64>(0)
        var clock: HostClock {
            HostClock { [self] in
                let k = step.withLock { value -> Int64 in
                    defer { value += 1 }
                    return value
                }
                return SampleTime(
                    wallNanos: (1_800_000_000 + k) * 1_000_000_000, bootNanos: UInt64(5_000 + k) * 1_000_000_000)
            }
        }
    }

    func recorder(_ database: AgentDatabase) throws -> MeteringRecorder {
        try MeteringRecorder(
            database: database, configuration: MeterConfiguration(hostID: "h1", intervalSeconds: 1),
            identity: InstanceIdentity(instanceID: "h1", userID: "operator"), encoder: UsageEventEncoder())
    }

    func sampler(_ clock: SteppingClock) -> HostSampler {
        HostSampler(
            configuration: HostSamplerConfiguration(
                procRoot: Self.fixture.appendingPathComponent("proc").path,
                sysRoot: Self.fixture.appendingPathComponent("sys").path, userHZ: 100),
            clock: clock.clock)
    }

    func alerts(_ database: AgentDatabase) throws -> [ThresholdEvent] {
        try database.events().filter { $0.eventType == ThresholdEvent.eventType }.map {
            try JSONDecoder().decode(ThresholdEvent.self, from: $0.payload)
        }
    }

    @Test func forWindowSurvivesARestartAndAlertsAreStoredWithTheirPeriod() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("thr-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("hostmeter.sqlite").path
        // The captured tree never changes, so every period uses 0 CPU seconds: below 1 each time.
        let rule = try ThresholdRule(name: "idle", metric: .cpuSeconds, op: .less, value: 1, forPeriods: 3)
        let clock = SteppingClock()
        let sampler = sampler(clock)

        var first = try recorder(try AgentDatabase.open(path: path))
        // A baseline, then two closed periods: the window counts 2 of 3.
        for _ in 0..<3 {
            let step = try #require(try first.record(sampler.sample(), rules: [rule]))
            #expect(step.thresholdEvents.isEmpty)
        }
        #expect(first.thresholdStates[ThresholdKey(rule: "idle", instanceID: "h1")]?.consecutivePeriods == 2)

        // A restart: the count comes back from the database, and the third period fires.
        var second = try recorder(try AgentDatabase.open(path: path))
        #expect(second.thresholdStates[ThresholdKey(rule: "idle", instanceID: "h1")]?.consecutivePeriods == 2)
        let firing = try #require(try second.record(sampler.sample(), rules: [rule]))
        #expect(firing.thresholdEvents.map(\.state) == [.firing])
        let stored = try alerts(second.database)
        #expect(stored.count == 1)
        #expect(stored.first?.rule == "idle")
        #expect(stored.first?.period == firing.events.first?.period)
        #expect(stored.first?.instanceID == "h1")

        // Still below: no repeat. Then the rule is removed: the firing alert resolves, once.
        _ = try second.record(sampler.sample(), rules: [rule])
        #expect(try alerts(second.database).count == 1)
        let resolved = try #require(try second.record(sampler.sample(), rules: []))
        #expect(resolved.thresholdEvents.map(\.state) == [.resolved])
        #expect(try alerts(second.database).map(\.state) == [.firing, .resolved])
        #expect(try second.database.thresholdStates().isEmpty)
        // Usage events are all there beside the alerts: one per closed period.
        #expect(try second.database.events().filter { $0.eventType == "resource_usage" }.count == 5)
    }

    @Test func configurationRulesParseThroughTheSharedType() throws {
        let configuration = try AgentConfiguration.parse(
            """
            thresholds:
              - name: cpu-high
                metric: cpu_percent_avg
                op: ">"
                value: 90
                for: 10
                clear: 80
                labels: {team: infra}
            """)
        #expect(configuration.thresholds.count == 1)
        #expect(configuration.thresholds[0].clear == 80)
        #expect(configuration.thresholds[0].labels == ["team": "infra"])

        for (yaml, key, line) in [
            ("thresholds:\n  - name: a\n    metric: cpu_percent_avg\n    op: \">\"\n    value: 90\n    clear: 95\n", "thresholds[0].clear", 6),
            ("thresholds:\n  - name: a\n    metric: nope\n    op: \">\"\n    value: 1\n", "thresholds[0].metric", 3),
            ("thresholds:\n  - name: a\n    metric: cpu_seconds\n    op: \">\"\n    value: 1\n    colour: red\n", "thresholds[0].colour", 6),
        ] {
            do {
                _ = try AgentConfiguration.parse(yaml, file: "t.yaml")
                Issue.record("accepted \(yaml)")
            } catch {
                #expect(error.key == key, "\(error)")
                #expect(error.line == line, "\(error)")
            }
        }
    }
}
