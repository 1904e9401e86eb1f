import Foundation
import GRDB
import Testing

@testable import Outbox

/// v6 rebuilds `events` with `UNIQUE (period_start, event_id)` in place of v1's `UNIQUE (event_id)`:
/// from a real v5 file, every row, id, count and the AUTOINCREMENT sequence survive, the same event
/// stored twice is still refused, and a batch's acknowledgement no longer rewrites a page of a
/// random-keyed index per event.
@Suite struct EventIDIndexMigrationTests {
    static let v5 = "v5 outbox totals and due index"

    /// A database file as a v5 agent left it, with `count` events stored and the newest deleted.
    func v5File(_ directory: URL, count: Int) throws -> String {
        let path = directory.appendingPathComponent("v5.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try AgentDatabase.migrator.migrate(queue, upTo: Self.v5)
        try queue.write { db in
            for n in 1...count {
                try db.execute(
                    sql: """
                        INSERT INTO events (event_id, event_type, instance_id, period_start, period_end, payload, created_at)
                        VALUES (?, 'resource_usage', 'vm-1', ?, ?, ?, ?)
                        """,
                    arguments: ["id-\(n)", n * 30, n * 30 + 30, Data(repeating: UInt8(n), count: 40 + n), n])
            }
            try db.execute(sql: "UPDATE events SET attempts = 1 WHERE id <= 2")
            try db.execute(sql: "DELETE FROM events WHERE id = ?", arguments: [count])
            #expect(try String.fetchAll(db, sql: "SELECT name FROM pragma_index_list('events')").contains("events_period_start"))
        }
        try queue.close()
        return path
    }

    @Test func aV5OutboxKeepsEveryRowItsIdsAndItsSequence() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = try v5File(directory, count: 50)
            let database = try AgentDatabase.open(path: path)
            let events = try database.events()
            #expect(events.map(\.eventID) == (1..<50).map { "id-\($0)" })
            #expect(events.map(\.payload) == (1..<50).map { Data(repeating: UInt8($0), count: 40 + $0) })
            #expect(try database.stats() == database.recountedStats())
            #expect(try database.stats().attemptedEvents == 2)
            try database.writer.read { db in
                let indexes = try Row.fetchAll(db, sql: "SELECT name, \"unique\" FROM pragma_index_list('events')")
                let names = indexes.map { $0["name"] as String }
                #expect(!names.contains("events_period_start"))
                #expect(names.contains("events_due"))
                let unique = try #require(indexes.first { ($0["unique"] as Int) == 1 })
                let columns = try String.fetchAll(
                    db, sql: "SELECT name FROM pragma_index_info(?) ORDER BY seqno", arguments: [unique["name"] as String])
                #expect(columns == ["period_start", "event_id"])
                // The oldest pending period comes from the new index, not a scan.
                let plan = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT MIN(period_start) FROM events")
                    .map { $0["detail"] as String }
                #expect(plan.contains { $0.contains("COVERING INDEX \(unique["name"] as String)") }, "\(plan)")
            }
            // The sequence goes on past the deleted newest row (id 50).
            try database.commit(
                MeteringCommit(events: [AgentDatabaseTests.event("new", start: 100_000, end: 100_030)]))
            let newest = try #require(try database.lease(now: 1e9, maxEvents: 100, maxBytes: 1 << 30).last)
            #expect(newest.event.eventID == "new" && newest.id == 51)
        }
    }

    @Test func theSameEventStoredTwiceIsStillRefused() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let database = try AgentDatabase.open(path: try v5File(directory, count: 3))
            #expect(throws: OutboxError.self) {
                try database.commit(MeteringCommit(events: [AgentDatabaseTests.event("id-1", start: 30, end: 60)]))
            }
            #expect(try database.events().count == 2)
        }
    }
}
