import Foundation
import HostMeterAgent
import Metering
import Outbox
import Probes
import Testing
import UsageModel

/// UsageEvent 1.1 through the real recorder and a real SQLite file: each instance's events chained
/// in period order, the chain carried over restarts and over an instance going and coming back,
/// and a commit that fails leaving the chain where it was.
@Suite struct ChainRecordingTests {
    typealias Fixture = InstanceRecordingTests
    let vm1 = InstanceIdentity(instanceID: "vm-1", userID: "alice", orgID: "acme")

    func recorder(_ path: String, maxBytes: Int? = nil) throws -> MeteringRecorder {
        try MeteringRecorder(
            database: try AgentDatabase.open(path: path),
            configuration: MeterConfiguration(hostID: "h1", intervalSeconds: 10),
            identity: InstanceIdentity(instanceID: "h1", userID: "operator"),
            encoder: UsageEventEncoder(version: .v1_1), maxBytes: maxBytes)
    }

    /// The stored events of `instance` in seq order, checked: seq from 1 without a hole, each
    /// prev_hash the hash before, each hash its content's, each period where the last one ended.
    func expectChain(_ database: AgentDatabase, _ instance: String, count: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let stored = try database.events(instanceID: instance).filter { $0.eventType == UsageEvent.eventType }
        var verifier = UsageChainVerifier(fromStart: true)
        for (index, event) in stored.enumerated() { verifier.add(event.payload, location: "row \(index)") }
        let report = verifier.report()
        #expect(report.problems.isEmpty, "\(report.problems)", sourceLocation: sourceLocation)
        let events = try stored.map { try JSONDecoder().decode(UsageEvent.self, from: $0.payload) }
        #expect(
            report.chains.map(\.lastSeq) == [Int64(count)], "\(events.map { "\($0.seq!) \($0.period)" })",
            sourceLocation: sourceLocation)
        #expect(events.map(\.version).allSatisfy { $0 == "1.1" }, sourceLocation: sourceLocation)
        #expect(try database.chainHeads()[instance] == events.max { $0.seq! < $1.seq! }?.chainHead, sourceLocation: sourceLocation)
    }

    @Test func eachInstanceIsChainedAcrossRestartsAndAbsences() throws {
        let scratch = try Fixture.Scratch()
        defer { scratch.remove() }
        func observation(_ second: Int64, _ cpu: UInt64) -> InstanceObservation {
            InstanceRecordingTests().observation(vm1, second, cpuSeconds: cpu)
        }
        do {
            var recorder = try recorder(scratch.path)
            // Several periods in one step too: the agent was down past three period boundaries.
            for (second, cpu) in [(Int64(2_000), UInt64(0)), (2_011, 2), (2_044, 9)] {
                _ = try recorder.record(Fixture.hostSample(second, ticks: cpu * 100), instances: [observation(second, cpu)])
            }
            #expect(recorder.chains["vm-1"]?.seq == 2 && recorder.chains["h1"]?.seq == 2)
        }
        // A restart goes on from the stored heads.
        var restarted = try recorder(scratch.path)
        _ = try restarted.record(Fixture.hostSample(2_052, ticks: 1_000), instances: [observation(2_052, 10)])
        // vm-1 goes (its final period) and comes back later: the same chain goes on.
        _ = try restarted.record(Fixture.hostSample(2_061, ticks: 1_100), instances: [])
        #expect(try restarted.database.checkpoints()["vm-1"] == nil)
        _ = try restarted.record(Fixture.hostSample(2_070, ticks: 1_200), instances: [observation(2_070, 20)])
        _ = try restarted.record(Fixture.hostSample(2_081, ticks: 1_300), instances: [observation(2_081, 22)])
        // The restart's first step closed [2010, 2040) in one event: 2 periods, then one every 10 s.
        try expectChain(restarted.database, "h1", count: 6)
        // Three events up to its removal, then one from its return: the hole between them is its
        // absence (a gap event will say so), the chain goes on.
        let vm = try restarted.database.events(instanceID: "vm-1").map { try JSONDecoder().decode(UsageEvent.self, from: $0.payload) }
        #expect(vm.map(\.seq) == [1, 2, 3, 4], "\(vm.map { "\($0.seq!) \($0.period)" })")
        #expect(vm.map(\.prevHash) == [nil] + vm.dropLast().map(\.hash))
    }

    /// Commitments made in the commits that store the events, every `maxEvents` or `maxSeconds`,
    /// carried over a restart: every event stored is covered by exactly one commitment, each signed
    /// by the agent's key, or waits for the next one.
    @Test func commitmentsCoverEveryEventOnceAcrossARestart() throws {
        let scratch = try Fixture.Scratch()
        defer { scratch.remove() }
        let identity = SigningIdentity.generate()
        func recorder() throws -> MeteringRecorder {
            try MeteringRecorder(
                database: try AgentDatabase.open(path: scratch.path),
                configuration: MeterConfiguration(hostID: "h1", intervalSeconds: 10),
                identity: InstanceIdentity(instanceID: "h1", userID: "operator"), encoder: UsageEventEncoder(version: .v1_1),
                commitments: CommitmentSettings(identity: identity, maxEvents: 5, maxSeconds: 3_600))
        }
        var second: Int64 = 2_000
        do {
            var first = try recorder()
            for index in 0..<8 {
                _ = try first.record(
                    Fixture.hostSample(second, ticks: UInt64(index) * 100),
                    instances: [InstanceRecordingTests().observation(vm1, second, cpuSeconds: UInt64(index))])
                second += 10
            }
            #expect(first.commitmentHead?.seq == 2, "14 events, a commitment at the 5th and the 10th or so")
        }
        var restarted = try recorder()
        #expect(restarted.commitmentHead != nil)
        let pendingBefore = restarted.uncommitted.count
        for index in 8..<11 {
            _ = try restarted.record(
                Fixture.hostSample(second, ticks: UInt64(index) * 100),
                instances: [InstanceRecordingTests().observation(vm1, second, cpuSeconds: UInt64(index))])
            second += 10
        }
        // Everything stored, checked as a consumer would: signatures with the key, roots, coverage.
        var verifier = UsageChainVerifier(fromStart: true, keys: [nil: identity.publicIdentity])
        for (index, event) in try restarted.database.events().enumerated() { verifier.add(event.payload, location: "row \(index)") }
        let report = verifier.report()
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.commitments >= 3 && report.signaturesChecked == report.commitments)
        #expect(report.uncommitted == restarted.uncommitted.count && report.uncommitted < 5)
        #expect(pendingBefore < 5)
        let stored = try restarted.database.commitmentState()
        #expect(stored.head == restarted.commitmentHead && stored.leaves.count == restarted.uncommitted.count)
    }

    /// A reboot leaves a hole in the host's periods; its gap event, chained between the periods
    /// around it, explains it to a verifier.
    @Test func aRebootShipsItsGapInTheChain() throws {
        let scratch = try Fixture.Scratch()
        defer { scratch.remove() }
        var recorder = try recorder(scratch.path)
        _ = try recorder.record(Fixture.hostSample(2_000, ticks: 0))
        _ = try recorder.record(Fixture.hostSample(2_011, ticks: 500))
        // A new boot: the counters begin again, the boot clock too.
        var rebooted = Fixture.hostSample(2_095, ticks: 100)
        rebooted.bootID = "44444444-4444-4444-8444-444444444444"
        rebooted.time = SampleTime(wallNanos: 2_095 * 1_000_000_000, bootNanos: 5_000_000_000)
        _ = try recorder.record(rebooted)
        var later = Fixture.hostSample(2_111, ticks: 300)
        later.bootID = rebooted.bootID
        later.time = SampleTime(wallNanos: 2_111 * 1_000_000_000, bootNanos: 21_000_000_000)
        _ = try recorder.record(later)
        let stored = try recorder.database.events(instanceID: "h1")
        let gaps = stored.filter { $0.eventType == MeteringGapEvent.eventType }
        #expect(gaps.count == 1, "\(stored.map(\.eventType))")
        let payload = try #require(gaps.first).payload
        let gap = try #require(try JSONSerialization.jsonObject(with: payload) as? [String: Any])
        #expect(gap["reason"] as? String == "reboot" && gap["user_id"] as? String == "operator")
        var verifier = UsageChainVerifier(fromStart: true)
        for (index, event) in stored.enumerated() { verifier.add(event.payload, location: "row \(index)") }
        let report = verifier.report()
        #expect(report.problems.isEmpty, "\(report.problems)")
        // Without the gap event, the hole is a hole (and its seq is missing).
        var without = UsageChainVerifier(fromStart: true)
        for (index, event) in stored.enumerated() where event.eventType != MeteringGapEvent.eventType {
            without.add(event.payload, location: "row \(index)")
        }
        #expect(without.report().problems.map(\.kind) == [.missing])
    }

    @Test func aRefusedCommitLeavesTheChainWhereItWas() throws {
        let scratch = try Fixture.Scratch()
        defer { scratch.remove() }
        var recorder = try recorder(scratch.path)
        _ = try recorder.record(Fixture.hostSample(2_000, ticks: 0))
        _ = try recorder.record(Fixture.hostSample(2_011, ticks: 100))
        let head = try #require(recorder.chains["h1"])
        // Another writer holds the database: the step is refused and nothing advances.
        let blocker = try AgentDatabase.open(path: scratch.path, busyTimeoutSeconds: 0)
        var refused = try MeteringRecorder(
            database: try AgentDatabase.open(path: scratch.path, busyTimeoutSeconds: 0.05),
            configuration: recorder.configuration, identity: recorder.identity, encoder: recorder.encoder)
        try blocker.writer.writeWithoutTransaction { db in
            try db.execute(sql: "BEGIN IMMEDIATE")
            #expect(throws: OutboxError.self) { _ = try refused.record(Fixture.hostSample(2_022, ticks: 200)) }
            try db.execute(sql: "ROLLBACK")
        }
        #expect(refused.chains["h1"] == head)
        // The next step bills the refused one's span too, as seq 2.
        _ = try refused.record(Fixture.hostSample(2_033, ticks: 300))
        try expectChain(refused.database, "h1", count: 2)
        let last = try JSONDecoder().decode(UsageEvent.self, from: try #require(try refused.database.events().last).payload)
        #expect(last.seq == 2 && last.prevHash == head.hash && last.period == Period(start: 2_010, end: 2_030))
    }
}
