import Foundation
import Outbox
import Testing

@testable import Shipping

/// Gaps and baselines are audit records in the outbox's database: once a week old and no longer
/// needed by undelivered usage, the shipper removes them (at its first round and hourly after), so
/// VMs coming and going cannot grow the outbox without bound. Real SQLite, the real file sink.
@Suite struct ShipperAuditPruningTests {
    static func gap(_ instance: String) -> GapRecord {
        GapRecord(instanceID: instance, reason: "instance_stopped", from: 1_763_700_000, to: 1_763_700_030, detail: "stopped")
    }

    static func baseline(_ instance: String) -> BaselineRecord {
        BaselineRecord(
            instanceID: instance, bootID: "boot-a", wallNanos: 1_763_699_000 * 1_000_000_000,
            counters: Data(#"{"cpu_ns:cpu":1}"#.utf8))
    }

    @Test func theShipperPrunesAuditRecordsNothingNeedsOnceAWeekOld() async throws {
        let outbox = try FilledOutbox(events: 20)
        let now = Int64(Date().timeIntervalSince1970)
        // A VM removed eight days ago, all its usage delivered: its records go.
        try outbox.database.commit(
            MeteringCommit(gaps: [Self.gap("gone")], baselines: [Self.baseline("gone")]), now: now - 8 * 86_400)
        // A VM removed an hour ago: kept for the week.
        try outbox.database.commit(
            MeteringCommit(gaps: [Self.gap("recent")], baselines: [Self.baseline("recent")]), now: now - 3_600)
        // vm-1's usage is pending (and shipped below): a week-old gap inside it stays until delivered.
        try outbox.database.commit(
            MeteringCommit(
                gaps: [GapRecord(instanceID: "vm-1", reason: "counter_reset", from: 1_763_726_430, to: 1_763_726_430, detail: "")]),
            now: now - 8 * 86_400)

        let sink = FileSink(path: outbox.directory.appendingPathComponent("events.jsonl").path)
        let service = ShipperService(
            database: outbox.database, sink: sink, settings: ShipperIntegrationTests.fast,
            logger: ShipperIntegrationTests.quietLogger)
        var shipper = Shipper(service: service)
        _ = await shipper.step()
        #expect(try outbox.database.gaps().map(\.instanceID) == ["recent", "vm-1"])
        #expect(try outbox.database.baselines().map(\.instanceID) == ["recent"])

        var rounds = 0
        while try outbox.database.stats().pendingEvents > 0, rounds < 20 {
            _ = await shipper.step()
            rounds += 1
        }
        #expect(try outbox.database.stats().pendingEvents == 0)
        // Delivered now; the next pruning (an hour later) takes vm-1's gap too.
        #expect(try outbox.database.pruneAuditRecords(recordedBefore: now - 7 * 86_400) == 1)
        #expect(try outbox.database.gaps().map(\.instanceID) == ["recent"])
    }
}
