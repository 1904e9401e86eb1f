import Foundation
import GRDB
import Outbox
import TestSupport
import Testing
import UsageModel

/// The outbox's figures are kept by triggers (`outbox_totals`) rather than counted per read, and
/// leasing walks the due index: both must always say what a recount says, whatever sequence of
/// writes the agent, the shipper, merging and the CLI make.
@Suite struct OutboxTotalsTests {
    /// 16 random histories of 60 operations each on a real file: commits of real usage events,
    /// leases, acknowledgements, retries, dead-lettering, replays and merges near the bound. After
    /// every operation the kept figures equal a row-by-row recount, and the next due time equals
    /// the earliest due event.
    @Test func keptTotalsEqualARecountAfterEveryWrite() throws {
        for seed in UInt64(1)...16 {
            var random = SplitMix64(state: seed)
            try AgentDatabaseTests.withTemporaryDirectory { directory in
                let database = try AgentDatabase.open(path: directory.appendingPathComponent("agent.sqlite").path)
                var index = 0
                var leased: [LeasedEvent] = []
                var now = 1_000.0
                for step in 0..<60 {
                    now += Double(random.next() % 20)
                    switch random.next() % 7 {
                    case 0, 1:
                        let count = Int(random.next() % 40) + 1
                        let events = try (0..<count).map { offset in
                            try OutboxBoundTests.outboxEvent(
                                OutboxBoundTests.usageEvent(
                                    instance: OutboxBoundTests.instances[(index + offset) % 3], index: (index + offset) / 3))
                        }
                        index += count
                        try database.commit(MeteringCommit(events: events), now: Int64(now))
                    case 2:
                        leased = try database.lease(now: now, maxEvents: Int(random.next() % 60) + 1, maxBytes: 1 << 20)
                    case 3:
                        try database.acknowledge(Self.pick(&leased, using: &random).map(\.id))
                    case 4:
                        try database.scheduleRetry(
                            Self.pick(&leased, using: &random).map(\.id), at: now + Double(random.next() % 60), error: "HTTP 503")
                    case 5:
                        let refused = Self.pick(&leased, using: &random)
                        try database.deadLetter(refused.map(\.id), reason: "HTTP 422", now: now)
                        if random.next() % 2 == 0 { try database.replay(eventIDs: refused.map(\.event.eventID)) }
                    default:
                        // Near the bound: merges never-offered events (DELETE + INSERT of other sizes).
                        try? database.makeRoom(maxBytes: try database.usedBytes(), now: Int64(now))
                    }
                    let kept = try database.stats()
                    let counted = try database.recountedStats()
                    #expect(kept == counted, "seed \(seed), step \(step)")
                    let due = try database.writer.read { db in
                        try Double.fetchOne(db, sql: "SELECT next_attempt_at FROM events NOT INDEXED ORDER BY 1 LIMIT 1")
                    }
                    #expect(try database.nextAttemptAt() == due, "seed \(seed), step \(step)")
                    if kept != counted { return }
                }
            }
        }
    }

    /// A database made by an older hostmeter (schema v4, with events and dead letters in it) gets
    /// totals that count what was there before the triggers existed.
    @Test func migratingAFullOutboxCountsWhatIsThere() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("agent.sqlite").path
            let database = try AgentDatabase.open(path: path)
            let stored = try AgentDatabaseDeliveryTests.fill(database, count: 12)
            let leased = try database.lease(now: 10, maxEvents: 3, maxBytes: 1 << 20)
            try database.deadLetter([leased[0].id], reason: "HTTP 400", now: 11)
            // The newest event delivered: the highest id ever given is no longer in the table.
            try database.acknowledge([Int64(stored.count)])
            let expected = try database.recountedStats()
            let events = try database.events()
            // Back to v4: the v5 objects (and v7's columns, v8's table) gone, as an older agent left
            // the file.
            try database.writer.write { db in
                try db.execute(
                    sql: """
                        DROP TRIGGER events_counted_in; DROP TRIGGER events_counted_out; DROP TRIGGER events_recounted;
                        ALTER TABLE events ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
                        UPDATE events SET attempts = (SELECT attempts FROM event_attempts a WHERE a.id = events.id)
                            WHERE id IN (SELECT id FROM event_attempts);
                        DROP TABLE event_attempts;
                        ALTER TABLE events DROP COLUMN user_id; ALTER TABLE events DROP COLUMN org_id;
                        ALTER TABLE dead_letters DROP COLUMN user_id; ALTER TABLE dead_letters DROP COLUMN org_id;
                        DROP TABLE outbox_totals; DROP INDEX events_due; DROP INDEX IF EXISTS events_period_start;
                        DROP TRIGGER dead_letters_counted_in; DROP TRIGGER dead_letters_counted_out;
                        DROP TRIGGER dead_letters_recounted;
                        DELETE FROM grdb_migrations WHERE identifier LIKE 'v5 %' OR identifier LIKE 'v6 %' OR identifier LIKE 'v7 %'
                            OR identifier LIKE 'v8 %';
                        PRAGMA user_version = 4;
                        """)
            }
            let reopened = try AgentDatabase.open(path: path)
            #expect(try reopened.stats() == expected)
            // v6's rebuild of the table keeps every row with its id, and ids go on from the highest
            // ever given (the AUTOINCREMENT sequence), not from the highest left.
            #expect(try reopened.events() == events)
            try reopened.commit(MeteringCommit(events: [AgentDatabaseTests.event("after", start: 10_000, end: 10_030)]))
            let after = try #require(try reopened.lease(now: 20_000, maxEvents: 100, maxBytes: 1 << 20).last)
            #expect(after.event.eventID == "after" && after.id > Int64(stored.count))
            #expect(expected.pendingEvents == stored.count - 2 && expected.deadLetters == 1 && expected.attemptedEvents == 2)
        }
    }

    /// What a power cut may take back: a commit of metering usage and a lease that counts a first
    /// attempt are fsynced (`synchronous = FULL`); an acknowledgement, a retry time, dead-lettering
    /// and the lease of only retried events are not. Checked on the statements the writer
    /// connection runs.
    @Test func onlyWritesThatProtectBillingAreFsynced() throws {
        try AgentDatabaseDeliveryTests.withDatabase { database, _ in
            let log = StatementLog()
            try log.follow(database.writer)
            func relaxed(_ write: () throws -> Void) rethrows -> Bool {
                log.clear()
                try write()
                return log.all.contains("PRAGMA synchronous = NORMAL")
            }
            #expect(try !relaxed { _ = try AgentDatabaseDeliveryTests.fill(database, count: 4) })
            var leased: [LeasedEvent] = []
            #expect(try !relaxed { leased = try database.lease(now: 100, maxEvents: 4, maxBytes: 1 << 20) })
            #expect(try relaxed { try database.acknowledge([leased[0].id]) })
            #expect(try relaxed { try database.scheduleRetry(leased[1...].map(\.id), at: 200, error: "HTTP 503") })
            // Only retried events are due: their lease counts no first attempt.
            #expect(try relaxed { leased = try database.lease(now: 200, maxEvents: 4, maxBytes: 1 << 20) })
            #expect(leased.count == 3 && leased.allSatisfy { $0.attempts == 2 })
            #expect(try relaxed { try database.deadLetter([leased[0].id], reason: "HTTP 422", now: 201) })
            // A replayed dead letter is due at 0 again: leased durably, as if never offered.
            try database.replay(eventIDs: nil)
            #expect(try !relaxed { leased = try database.lease(now: 202, maxEvents: 4, maxBytes: 1 << 20) })
            // Every write leaves the connection fsyncing again.
            #expect(try database.writer.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
        }
    }

    /// A random part of `leased`, removed from it.
    static func pick(_ leased: inout [LeasedEvent], using random: inout SplitMix64) -> [LeasedEvent] {
        guard !leased.isEmpty else { return [] }
        let count = Int(random.next() % UInt64(leased.count)) + 1
        defer { leased.removeFirst(count) }
        return Array(leased.prefix(count))
    }
}
