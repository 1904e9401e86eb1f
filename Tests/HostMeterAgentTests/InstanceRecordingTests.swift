import Foundation
import HostMeterAgent
import Metering
import Outbox
import Probes
import Testing
import UsageModel

/// Instances through the real recorder and a real SQLite file: metered beside the host, stopped,
/// removed (final period and checkpoint deletion in one transaction), and carried over restarts.
@Suite struct InstanceRecordingTests {
    static let boot = "33333333-3333-4333-8333-333333333333"
    let vm1 = InstanceIdentity(instanceID: "vm-1", userID: "alice", orgID: "acme")
    let vm2 = InstanceIdentity(instanceID: "vm-2", userID: "bob")

    /// A database in a fresh directory, removed at the end.
    struct Scratch {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inst-\(UUID().uuidString)")
        var path: String { directory.appendingPathComponent("hostmeter.sqlite").path }
        init() throws { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    func recorder(_ path: String, meterHost: Bool = true) throws -> MeteringRecorder {
        try MeteringRecorder(
            database: try AgentDatabase.open(path: path),
            configuration: MeterConfiguration(hostID: "h1", intervalSeconds: 10),
            identity: InstanceIdentity(instanceID: "h1", userID: "operator"), encoder: UsageEventEncoder(),
            meterHost: meterHost)
    }

    static func time(_ second: Int64) -> SampleTime {
        SampleTime(wallNanos: second * 1_000_000_000, bootNanos: UInt64(second - 1_000) * 1_000_000_000)
    }

    /// A host sample with a boot ID and the given CPU ticks.
    static func hostSample(_ second: Int64, ticks: UInt64) -> HostSample {
        var sample = HostSample(time: time(second))
        sample.bootID = boot
        let cpu = CPUTicks(user: ticks, nice: 0, system: 0, idle: 0)
        sample.cpu = Stat(total: cpu, perCPU: [PerCPUStat(id: 0, ticks: cpu)], bootTime: nil, userHZ: 100)
        return sample
    }

    /// A VM read at `second`: `cpuSeconds` of cgroup CPU time.
    func observation(_ identity: InstanceIdentity, _ second: Int64, cpuSeconds: UInt64?, inode: UInt64 = 1)
        -> InstanceObservation
    {
        InstanceObservation(
            identity: identity,
            reading: cpuSeconds.map {
                InstanceReading(
                    time: Self.time(second), bootID: Self.boot,
                    counters: [CounterSource(.cpuNanoseconds, "cgroup"): $0 * 1_000_000_000], cpuCapacity: 2,
                    generations: ["cgroup": inode])
            })
    }

    func usageEvents(_ database: AgentDatabase) throws -> [UsageEvent] {
        try database.events().filter { $0.eventType == UsageEvent.eventType }.map {
            try JSONDecoder().decode(UsageEvent.self, from: $0.payload)
        }
    }

    @Test func instancesAreMeteredBesideTheHostWithTheirOwnIdentity() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var recorder = try recorder(scratch.path)
        for (index, second) in [Int64(2_000), 2_005, 2_010].enumerated() {
            let step = try #require(
                try recorder.record(
                    Self.hostSample(second, ticks: UInt64(index) * 100),
                    instances: [
                        observation(vm1, second, cpuSeconds: UInt64(index) * 3),
                        observation(vm2, second, cpuSeconds: UInt64(index) * 1),
                    ]))
            _ = step
        }
        let events = try usageEvents(recorder.database)
        #expect(Set(events.map(\.instanceID)) == ["h1", "vm-1", "vm-2"])
        let first = try #require(events.first { $0.instanceID == "vm-1" })
        #expect(first.userID == "alice")
        #expect(first.orgID == "acme")
        #expect(first.metrics.cpuSeconds == 6)
        #expect(first.period == Period(start: 2_000, end: 2_010))
        #expect(events.first { $0.instanceID == "vm-2" }?.metrics.cpuSeconds == 2)
        #expect(events.first { $0.instanceID == "vm-2" }?.userID == "bob")
    }

    @Test func aRemovedInstanceGetsItsFinalPeriodAndLosesItsCheckpointInOneStep() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var recorder = try recorder(scratch.path)
        _ = try recorder.record(Self.hostSample(2_000, ticks: 0), instances: [observation(vm1, 2_000, cpuSeconds: 0)])
        _ = try recorder.record(Self.hostSample(2_004, ticks: 0), instances: [observation(vm1, 2_004, cpuSeconds: 3)])
        #expect(try recorder.database.checkpoints()["vm-1"] != nil)
        let step = try #require(try recorder.record(Self.hostSample(2_006, ticks: 0), instances: []))
        let final = try #require(step.events.first { $0.instanceID == "vm-1" })
        #expect(final.period == Period(start: 2_000, end: 2_004))
        #expect(final.metrics.cpuSeconds == 3)
        #expect(final.userID == "alice")
        #expect(try recorder.database.checkpoints()["vm-1"] == nil)
        #expect(recorder.states["vm-1"] == nil)
        // Nothing more for it, ever.
        let later = try #require(try recorder.record(Self.hostSample(2_020, ticks: 0), instances: []))
        #expect(!later.events.contains { $0.instanceID == "vm-1" })
    }

    @Test func aManifestRemovedWhileTheAgentWasDownIsFinishedForItsOwnerAfterTheRestart() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        do {
            var recorder = try recorder(scratch.path)
            _ = try recorder.record(Self.hostSample(2_000, ticks: 0), instances: [observation(vm1, 2_000, cpuSeconds: 0)])
            // Closes [2000, 2010) and writes the checkpoint with the identity.
            _ = try recorder.record(Self.hostSample(2_011, ticks: 0), instances: [observation(vm1, 2_011, cpuSeconds: 4)])
            _ = try recorder.record(Self.hostSample(2_015, ticks: 0), instances: [observation(vm1, 2_015, cpuSeconds: 9)])
            // A clean shutdown writes the checkpoints that moved on since the last period.
            #expect(recorder.unsaved.contains("vm-1"))
            try recorder.flush()
            #expect(recorder.unsaved.isEmpty)
        }
        var restarted = try recorder(scratch.path)
        let step = try #require(try restarted.record(Self.hostSample(2_030, ticks: 0), instances: []))
        // The final period runs to the last sample before the shutdown.
        let final = try #require(step.events.first { $0.instanceID == "vm-1" })
        #expect(final.period == Period(start: 2_010, end: 2_015))
        #expect(final.metrics.cpuSeconds == 5)
        #expect(final.userID == "alice")
        #expect(final.orgID == "acme")
        #expect(try restarted.database.checkpoints()["vm-1"] == nil)
        let all = try usageEvents(restarted.database).filter { $0.instanceID == "vm-1" }
        for (earlier, later) in zip(all, all.dropFirst()) { #expect(earlier.period.end <= later.period.start) }
    }

    @Test func aStoppedInstanceBillsUpToItsLastSampleAndNothingUntilItRunsAgain() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var first = try recorder(scratch.path)
        _ = try first.record(Self.hostSample(2_000, ticks: 0), instances: [observation(vm1, 2_000, cpuSeconds: 10)])
        _ = try first.record(Self.hostSample(2_003, ticks: 0), instances: [observation(vm1, 2_003, cpuSeconds: 12)])
        let stop = try #require(
            try first.record(Self.hostSample(2_006, ticks: 0), instances: [observation(vm1, 2_006, cpuSeconds: nil)]))
        let partial = try #require(stop.events.first { $0.instanceID == "vm-1" })
        #expect(partial.period == Period(start: 2_000, end: 2_003))
        #expect(partial.metrics.cpuSeconds == 2)
        // Stopped across a period boundary: no event for it.
        let idle = try #require(
            try first.record(Self.hostSample(2_031, ticks: 0), instances: [observation(vm1, 2_031, cpuSeconds: nil)]))
        #expect(!idle.events.contains { $0.instanceID == "vm-1" })
        // The stop survives a restart, and the VM comes back with a new cgroup.
        var restarted = try recorder(scratch.path)
        #expect(restarted.states["vm-1"]?.isRunning == false)
        let back = try #require(
            try restarted.record(
                Self.hostSample(2_042, ticks: 0), instances: [observation(vm1, 2_042, cpuSeconds: 1, inode: 2)]))
        let stopGap = back.gaps.first { $0.instanceID == "vm-1" && $0.reason == .instanceStopped }
        #expect(stopGap?.from == 2_003)
        _ = try restarted.record(
            Self.hostSample(2_051, ticks: 0), instances: [observation(vm1, 2_051, cpuSeconds: 5, inode: 2)])
        let resumed = try usageEvents(restarted.database).filter { $0.instanceID == "vm-1" }.last
        #expect(resumed?.period == Period(start: 2_042, end: 2_050))
        #expect(resumed?.metrics.cpuSeconds == 5)
    }

    @Test func withoutHostModeOnlyInstancesAreMeteredAndTheOldHostCheckpointIsFinished() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        do {
            var recorder = try recorder(scratch.path)
            _ = try recorder.record(Self.hostSample(2_000, ticks: 0))
            _ = try recorder.record(Self.hostSample(2_005, ticks: 500))
        }
        var instancesOnly = try recorder(scratch.path, meterHost: false)
        let step = try #require(
            try instancesOnly.record(Self.hostSample(2_007, ticks: 700), instances: [observation(vm2, 2_007, cpuSeconds: 0)]))
        // The host's open period up to its last committed checkpoint is billed once, then nothing.
        #expect(step.events.allSatisfy { $0.instanceID == "h1" })
        #expect(try instancesOnly.database.checkpoints()["h1"] == nil)
        _ = try instancesOnly.record(Self.hostSample(2_012, ticks: 900), instances: [observation(vm2, 2_012, cpuSeconds: 2)])
        let events = try usageEvents(instancesOnly.database)
        #expect(events.filter { $0.instanceID == "vm-2" }.map(\.metrics.cpuSeconds) == [2])
        #expect(events.filter { $0.instanceID == "h1" }.count <= 1)
    }

    @Test func aSampleWithoutInstanceProbesLeavesTheInstancesAsTheyAre() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var recorder = try recorder(scratch.path)
        _ = try recorder.record(Self.hostSample(2_000, ticks: 0), instances: [observation(vm1, 2_000, cpuSeconds: 0)])
        // Host-only samples between instance probes (instance_sample_seconds > sample_seconds).
        for second in [Int64(2_005), 2_010, 2_011] {
            let step = try #require(try recorder.record(Self.hostSample(second, ticks: UInt64(second - 2_000) * 10)))
            #expect(!step.events.contains { $0.instanceID == "vm-1" })
        }
        #expect(recorder.states["vm-1"] != nil)
        #expect(try recorder.database.checkpoints()["vm-1"] != nil)
        // The next probe closes its period with everything since its baseline.
        let step = try #require(
            try recorder.record(Self.hostSample(2_015, ticks: 150), instances: [observation(vm1, 2_015, cpuSeconds: 7)]))
        #expect(step.events.first { $0.instanceID == "vm-1" }?.metrics.cpuSeconds == 7)
    }

    @Test func checkpointsAreWrittenWhenSomethingHappensNotEverySample() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var recorder = try recorder(scratch.path)
        _ = try recorder.record(Self.hostSample(2_001, ticks: 0), instances: [observation(vm1, 2_001, cpuSeconds: 0)])
        let baseline = try #require(try recorder.database.checkpoints()["vm-1"])
        _ = try recorder.record(Self.hostSample(2_003, ticks: 0), instances: [observation(vm1, 2_003, cpuSeconds: 1)])
        // No period closed, no gap: the stored checkpoint is still the baseline's.
        #expect(try recorder.database.checkpoints()["vm-1"] == baseline)
        _ = try recorder.record(Self.hostSample(2_011, ticks: 0), instances: [observation(vm1, 2_011, cpuSeconds: 2)])
        #expect(try recorder.database.checkpoints()["vm-1"] != baseline)
    }
}
