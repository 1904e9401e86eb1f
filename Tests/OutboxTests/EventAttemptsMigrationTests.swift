import Foundation
import GRDB
import Testing

@testable import Outbox

/// v8 keeps each pending event's attempts in `event_attempts` instead of a column of `events`, so
/// that a lease writes a few narrow pages instead of every page its batch's payloads sit on. From a
/// real v7 file the attempts survive; afterwards every way an event moves keeps them right, and a
/// lease leaves the pages of `events` as they were.
@Suite struct EventAttemptsMigrationTests {
    static let v7 = "v7 event owners"

    /// A database file as a v7 agent left it: six events, the second offered once and the fourth
    /// three times, and a dead letter offered twice.
    func v7File(_ directory: URL) throws -> String {
        let path = directory.appendingPathComponent("v7.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try AgentDatabase.migrator.migrate(queue, upTo: Self.v7)
        try queue.write { db in
            for n in 1...6 {
                let event = AgentDatabaseTests.event("e-\(n)", start: Int64(n * 30), end: Int64(n * 30 + 30))
                try db.execute(
                    sql: """
                        INSERT INTO events (event_id, event_type, instance_id, period_start, period_end, payload, created_at,
                                            attempts, next_attempt_at)
                        VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)
                        """,
                    arguments: [event.eventID, event.eventType, event.instanceID, event.periodStart, event.periodEnd,
                                event.payload, [2: 1, 4: 3][n] ?? 0, n == 4 ? 500.0 : 0])
            }
            try db.execute(
                sql: """
                    INSERT INTO dead_letters (event_id, event_type, instance_id, period_start, period_end, payload,
                                              attempts, reason, dead_at)
                    VALUES ('dead', 'resource_usage', 'vm-1', 600, 630, x'7b7d', 2, 'HTTP 400', 0)
                    """)
        }
        try queue.close()
        return path
    }

    @Test func aV7OutboxKeepsEveryEventsAttempts() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let database = try AgentDatabase.open(path: try v7File(directory))
            let stats = try database.stats()
            #expect(stats == (try database.recountedStats()))
            #expect(stats.attemptedEvents == 2 && stats.pendingEvents == 6)
            try database.writer.read { db in
                let columns = try String.fetchAll(db, sql: "SELECT name FROM pragma_table_info('events')")
                #expect(!columns.contains("attempts"))
                let rows = try Row.fetchAll(db, sql: "SELECT id, attempts FROM event_attempts ORDER BY id")
                #expect(rows.map { [$0["id"] as Int64, $0["attempts"] as Int64] } == [[2, 1], [4, 3]])
            }
            // Each lease counts one more attempt: the fourth (due at 500) comes after the others.
            let leased = try database.lease(now: 1_000, maxEvents: 10, maxBytes: 1 << 20)
            #expect(leased.map(\.event.eventID) == ["e-1", "e-2", "e-3", "e-5", "e-6", "e-4"])
            #expect(leased.map(\.attempts) == [1, 2, 1, 1, 1, 4])
            #expect(try database.stats().attemptedEvents == 6)
            #expect(try database.stats() == database.recountedStats())
        }
    }

    @Test func attemptsFollowEveryMoveOfAnEvent() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let database = try AgentDatabase.open(path: try v7File(directory))
            func attemptRows() throws -> Int {
                try database.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM event_attempts") ?? -1 }
            }
            let leased = try database.lease(now: 100, maxEvents: 3, maxBytes: 1 << 20)
            #expect(leased.map(\.event.eventID) == ["e-1", "e-2", "e-3"])
            #expect(try attemptRows() == 4)
            // Acknowledged: the events and their attempts go.
            try database.acknowledge([leased[0].id])
            #expect(try attemptRows() == 3)
            // Dead-lettered: the dead letter records how often it was offered.
            try database.deadLetter([leased[1].id], reason: "HTTP 422", now: 200)
            #expect(try attemptRows() == 2)
            let dead = try database.deadLetters()
            #expect(dead.map(\.event.eventID) == ["dead", "e-2"] && dead.map(\.attempts) == [2, 2])
            #expect(try database.stats() == database.recountedStats())
            // Replayed: offered before, so it keeps its attempts and is never merged.
            #expect(try database.replay(eventIDs: ["dead", "e-2"]) == 2)
            #expect(try attemptRows() == 4)
            #expect(try database.stats() == database.recountedStats())
            let again = try database.lease(now: 1_000, maxEvents: 10, maxBytes: 1 << 20)
            #expect(Dictionary(uniqueKeysWithValues: again.map { ($0.event.eventID, $0.attempts) })
                == ["e-3": 2, "e-4": 4, "e-5": 1, "e-6": 1, "dead": 3, "e-2": 3])
            try database.acknowledge(again.map(\.id))
            #expect(try attemptRows() == 0)
            #expect(try database.stats() == database.recountedStats() && database.stats().pendingEvents == 0)
        }
    }

    /// The point of v8: a lease writes the attempts table and nothing of `events`, whose rows carry
    /// the payloads. Checked on the WAL: after a checkpoint empties it, the frames the lease appends
    /// name no page of `events` or of its indexes (pages as SQLite's `dbstat` maps them).
    @Test func aLeaseWritesNoPageOfEvents() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("pages.sqlite").path
            let database = try AgentDatabase.open(path: path)
            _ = try AgentDatabaseDeliveryTests.fill(database, count: 200)
            let eventPages = try database.writer.read { db in
                Set(
                    try Int.fetchAll(
                        db,
                        sql: """
                            SELECT pageno FROM dbstat
                            WHERE name IN ('events', 'events_due') OR name LIKE 'sqlite_autoindex_events%'
                            """))
            }
            #expect(eventPages.count > 10)
            try database.writer.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
            let leased = try database.lease(now: 1e9, maxEvents: 150, maxBytes: 1 << 30)
            #expect(leased.count == 150)
            let written = try Self.walPages(path + "-wal")
            #expect(!written.isEmpty)
            #expect(written.isDisjoint(with: eventPages), "the lease wrote pages \(written.intersection(eventPages).sorted())")
            // Acknowledging does rewrite them: the check above can see such a write.
            try database.writer.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
            try database.acknowledge(leased.map(\.id))
            #expect(!(try Self.walPages(path + "-wal")).isDisjoint(with: eventPages))
        }
    }

    /// The page numbers of the frames in a WAL file: a 32-byte header holding the page size, then
    /// frames of a 24-byte header (the page number first, big-endian) and a page.
    static func walPages(_ path: String) throws -> Set<Int> {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func word(_ at: Int) -> Int { bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
        guard bytes.count >= 32 else { return [] }
        let pageSize = word(8)
        var pages: Set<Int> = []
        var offset = 32
        while offset + 24 + pageSize <= bytes.count {
            pages.insert(word(offset))
            offset += 24 + pageSize
        }
        return pages
    }
}
