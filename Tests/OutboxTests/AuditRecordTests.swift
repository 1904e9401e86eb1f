import Foundation
import Outbox
import Testing

/// Gaps and baselines are audit records, not usage: they explain holes in an instance's periods and
/// where its counting started. They take room under `outbox.max_bytes` like events, so those nothing
/// needs any more go — a gap once the usage on both sides of it was delivered, a baseline once a
/// newer one took over and the usage it started was delivered, a removed instance's once all its
/// usage was — and never one that undelivered usage (pending or dead-lettered) still needs. Real
/// SQLite files.
@Suite struct AuditRecordTests {
    static let maxBytes = 1 << 20

    static func gap(_ instance: String, from: Int64, to: Int64) -> GapRecord {
        GapRecord(instanceID: instance, reason: "instance_stopped", from: from, to: to, detail: "stopped")
    }

    static func baseline(_ instance: String, at seconds: Int64) -> BaselineRecord {
        BaselineRecord(
            instanceID: instance, bootID: "boot-a", wallNanos: seconds * 1_000_000_000,
            counters: Data(#"{"cpu_ns:cpu":\#(seconds)}"#.utf8))
    }

    /// A host whose VMs came and went long ago left enough gaps and baselines to reach the bound;
    /// none of their usage is undelivered. The next step must be stored, not refused: the records
    /// nothing needs make room, and those a live instance's pending usage needs stay.
    @Test func auditRecordsNothingNeedsMakeRoomInsteadOfHoldingMeteringBack() throws {
        try OutboxBoundTests.withDatabase { database, _ in
            let longAgo = OutboxBoundTests.origin - 86_400
            var vm = 0
            while try database.usedBytes() <= Self.maxBytes, vm < 100_000 {
                var commit = MeteringCommit()
                for _ in 0..<200 {
                    vm += 1
                    let detail = String(repeating: "d", count: 200)
                    commit.gaps.append(
                        GapRecord(instanceID: "old-\(vm)", reason: "instance_stopped", from: longAgo, to: longAgo + 30, detail: detail))
                    commit.baselines.append(Self.baseline("old-\(vm)", at: longAgo - 60))
                }
                try database.commit(commit, now: longAgo)
            }
            // A live VM: its checkpoint and baseline, a gap, and a pending period right after the gap.
            let live = try OutboxBoundTests.outboxEvent(OutboxBoundTests.usageEvent(instance: "vm-a", index: 0))
            try database.commit(
                MeteringCommit(
                    checkpoints: [AgentDatabaseTests.checkpoint("vm-a", state: "{}")], events: [live],
                    gaps: [Self.gap("vm-a", from: live.periodStart - 60, to: live.periodStart)],
                    baselines: [Self.baseline("vm-a", at: live.periodStart - 120)]),
                now: longAgo)

            let next = try OutboxBoundTests.outboxEvent(OutboxBoundTests.usageEvent(instance: "vm-a", index: 1))
            try database.commit(MeteringCommit(events: [next]), maxBytes: Self.maxBytes)
            #expect(try database.usedBytes() <= Self.maxBytes / 10 * 9)
            #expect(try database.events().map(\.eventID) == [live.eventID, next.eventID])
            #expect(try database.baselines().map(\.instanceID) == ["vm-a"])
            #expect(try database.gaps().map(\.instanceID) == ["vm-a"])
        }
    }

    @Test func pruningKeepsWhatUndeliveredUsageNeeds() throws {
        try OutboxBoundTests.withDatabase { database, _ in
            let old: Int64 = 1_000
            // "live" is metered now; its oldest undelivered period starts at 1500.
            let pending = AgentDatabaseTests.event("live-1500", instance: "live", start: 1500, end: 1530)
            // "refused" was removed; one of its periods (500–530) is a dead letter.
            let refused = AgentDatabaseTests.event("refused-500", instance: "refused", start: 500, end: 530)
            try database.commit(
                MeteringCommit(
                    checkpoints: [AgentDatabaseTests.checkpoint("live", state: "{}")], events: [pending, refused],
                    gaps: [
                        Self.gap("live", from: 800, to: 900),  // delivered on both sides: goes
                        Self.gap("live", from: 1400, to: 1500),  // the period after it is pending: stays
                        Self.gap("live", from: 2400, to: 2500),  // after the pending one: stays
                        Self.gap("gone", from: 100, to: 200),  // removed, all delivered: goes
                        Self.gap("refused", from: 300, to: 400),  // before its dead letter: goes
                        Self.gap("refused", from: 530, to: 600),  // after its dead letter: stays
                    ],
                    baselines: [
                        Self.baseline("live", at: 100),  // superseded at 1000, before 1500: goes
                        Self.baseline("live", at: 1000),  // superseded at 2000, after 1500: stays
                        Self.baseline("live", at: 2000),  // the latest of a live instance: stays
                        Self.baseline("gone", at: 50),  // the latest of a removed, delivered one: goes
                        Self.baseline("refused", at: 450),  // its usage is a dead letter: stays
                    ]),
                now: old)
            let leased = try database.lease(now: 1e12, maxEvents: 10, maxBytes: 1 << 20)
            try database.deadLetter(leased.filter { $0.event.eventID == refused.eventID }.map(\.id), reason: "http_400", now: 1)
            // Recorded recently: kept whatever they are.
            try database.commit(
                MeteringCommit(gaps: [Self.gap("gone", from: 200, to: 300)], baselines: [Self.baseline("gone", at: 60)]),
                now: 5_000)

            #expect(try database.pruneAuditRecords(recordedBefore: 4_000) == 5)
            #expect(
                try database.gaps().map { "\($0.instanceID) \($0.to)" }
                    == ["live 1500", "live 2500", "refused 600", "gone 300"])
            #expect(
                try database.baselines().map { "\($0.instanceID) \($0.wallNanos / 1_000_000_000)" }
                    == ["live 1000", "live 2000", "refused 450", "gone 60"])
            // Nothing more to do until more usage is delivered.
            #expect(try database.pruneAuditRecords(recordedBefore: 4_000) == 0)
        }
    }
}
