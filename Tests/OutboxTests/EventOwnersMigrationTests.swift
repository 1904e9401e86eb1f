import Foundation
import GRDB
import Testing

@testable import Outbox

/// v7 keeps `user_id` and `org_id` beside each pending event and dead letter, so a sink reads an
/// event's owner from its row. Rows stored before are filled from their payloads, and every way an
/// event moves (commit, lease, dead-lettering, replay) carries its owner along.
@Suite struct EventOwnersMigrationTests {
    static let v6 = "v6 event ids unique by period"

    /// Payloads as a v6 agent (or anything else) may have left them, with the owner v7 reads.
    static let payloads: [(payload: String, userID: String?, orgID: String?)] = [
        (#"{"user_id":"alice","org_id":"acme","version":"1.0"}"#, "alice", "acme"),
        (#"{"org_id":null,"user_id":"bob"}"#, "bob", nil),
        (#"{"user_id":"é \"quoted\""}"#, "é \"quoted\"", nil),
        (#"{"user_id":7,"org_id":{"id":"x"}}"#, nil, nil),  // not strings: nothing, as a decoder finds
        (#"{"labels":{"user_id":"nested"}}"#, nil, nil),  // only the event's own keys
        ("not json", nil, nil),
    ]

    @Test func aV6OutboxGetsItsOwnersFromThePayloads() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("v6.sqlite").path
            let queue = try DatabaseQueue(path: path)
            try AgentDatabase.migrator.migrate(queue, upTo: Self.v6)
            try queue.write { db in
                for (n, entry) in Self.payloads.enumerated() {
                    try db.execute(
                        sql: """
                            INSERT INTO events (event_id, event_type, instance_id, period_start, period_end, payload, created_at)
                            VALUES (?, 'resource_usage', 'vm-1', ?, ?, ?, 0)
                            """,
                        arguments: ["e-\(n)", n * 30, n * 30 + 30, Data(entry.payload.utf8)])
                    try db.execute(
                        sql: """
                            INSERT INTO dead_letters (event_id, event_type, instance_id, period_start, period_end, payload,
                                                      attempts, reason, dead_at)
                            VALUES (?, 'resource_usage', 'vm-2', ?, ?, ?, 1, 'refused', 0)
                            """,
                        arguments: ["d-\(n)", n * 30, n * 30 + 30, Data(entry.payload.utf8)])
                }
            }
            try queue.close()

            let database = try AgentDatabase.open(path: path)
            let owners = Self.payloads.map { [$0.userID, $0.orgID] }
            #expect(try database.events().map { [$0.userID, $0.orgID] } == owners)
            #expect(try database.deadLetters().map { [$0.event.userID, $0.event.orgID] } == owners)
            #expect(try database.stats() == database.recountedStats())
        }
    }

    @Test func theOwnerTravelsWithTheEvent() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let database = try AgentDatabase.open(path: directory.appendingPathComponent("o.sqlite").path)
            var owned = AgentDatabaseTests.event("owned", start: 0, end: 30)
            owned.userID = "u-1"
            owned.orgID = "o-1"
            var userOnly = AgentDatabaseTests.event("user-only", start: 30, end: 60)
            userOnly.userID = "u-2"
            try database.commit(MeteringCommit(events: [owned, userOnly]))
            #expect(try database.events() == [owned, userOnly])

            let leased = try database.lease(now: 1e9, maxEvents: 10, maxBytes: 1 << 20)
            #expect(leased.map(\.event) == [owned, userOnly])
            try database.deadLetter(leased.map(\.id), reason: "refused", now: 1e9)
            #expect(try database.deadLetters().map(\.event) == [owned, userOnly])
            #expect(try database.replay(eventIDs: nil) == 2)
            #expect(try database.lease(now: 1e9, maxEvents: 10, maxBytes: 1 << 20).map(\.event) == [owned, userOnly])
        }
    }
}
