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
}
