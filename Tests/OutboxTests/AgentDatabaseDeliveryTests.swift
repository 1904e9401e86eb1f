import Foundation
import Outbox
import Testing

/// The shipper's side of the outbox, on real SQLite files: leasing the oldest due events (counted as
/// attempted before they are sent), acknowledging, retrying later, dead letters and their replay,
/// the stats `hostmeter outbox stats` shows, and all of it surviving a restart.
@Suite struct AgentDatabaseDeliveryTests {
    // MARK: Fixtures

    /// An event whose payload is exactly `bytes` long (at least its JSON wrapper), period `[30·n, 30·n + 30)`.
    static func event(_ n: Int, instance: String = "vm-1", bytes: Int = 100) -> OutboxEvent {
        let id = "e\(n)"
        let prefix = #"{"event_id":"\#(id)","pad":""#
        let suffix = #""}"#
        let padding = String(repeating: "x", count: max(0, bytes - prefix.utf8.count - suffix.utf8.count))
        return OutboxEvent(
            eventID: id, eventType: "resource_usage", instanceID: instance, periodStart: Int64(30 * n),
            periodEnd: Int64(30 * n + 30), payload: Data((prefix + padding + suffix).utf8))
    }

    /// Events `e1 … e<count>`, committed one step each (as the sampler does), so insertion order is 1, 2, 3 …
    static func fill(_ database: AgentDatabase, count: Int, bytes: Int = 100, from first: Int = 1) throws -> [OutboxEvent] {
        var events: [OutboxEvent] = []
        for n in first..<(first + count) {
            let event = Self.event(n, bytes: bytes)
            try database.commit(MeteringCommit(events: [event]), now: Int64(30 * n + 31))
            events.append(event)
        }
        return events
    }

    /// A fresh database file in a temporary directory, removed afterwards.
    static func withDatabase<T>(_ body: (AgentDatabase, String) throws -> T) throws -> T {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("agent.sqlite").path
            return try body(try AgentDatabase.open(path: path), path)
        }
    }

    /// `last_error` of the pending event with `eventID` (a raw read: the API has no getter for it).
    static func lastError(_ database: AgentDatabase, _ eventID: String) throws -> String? {
        try database.writer.read { db in
            try String.fetchOne(db, sql: "SELECT last_error FROM events WHERE event_id = ?", arguments: [eventID])
        }
    }

    /// What a dead letter says, comparable (DeadLetter has no public initializer to build an expected one).
    struct Summary: Equatable {
        var event: OutboxEvent
        var attempts: Int
        var reason: String
        var deadAt: Double
    }

    static func summary(_ event: OutboxEvent, attempts: Int, reason: String, deadAt: Double) -> Summary {
        Summary(event: event, attempts: attempts, reason: reason, deadAt: deadAt)
    }

    static func summary(_ dead: [DeadLetter]) -> [Summary] {
        dead.map { Summary(event: $0.event, attempts: $0.attempts, reason: $0.reason, deadAt: $0.deadAt) }
    }

    // MARK: Lease

    @Test func leaseReturnsTheOldestDueEventsInInsertionOrder() throws {
        try Self.withDatabase { database, _ in
            // Stored out of period order across two instances: the lease follows insertion, not periods.
            let stored = [
                Self.event(5), Self.event(2, instance: "vm-2"), Self.event(9), Self.event(1, instance: "vm-2"),
                Self.event(7),
            ]
            for (index, event) in stored.enumerated() {
                try database.commit(MeteringCommit(events: [event]), now: Int64(index))
            }
            let leased = try database.lease(now: 1_000, maxEvents: 3, maxBytes: 1 << 20)
            #expect(leased.map(\.event) == Array(stored.prefix(3)))
            #expect(leased.map(\.attempts) == [1, 1, 1])
            #expect(leased.map(\.id) == leased.map(\.id).sorted())
            #expect(Set(leased.map(\.id)).count == 3)

            // Leasing does not hide an event (the shipper acknowledges or reschedules it); it counts the attempt.
            let again = try database.lease(now: 1_000, maxEvents: 10, maxBytes: 1 << 20)
            #expect(again.map(\.event) == stored)
            #expect(again.map(\.attempts) == [2, 2, 2, 1, 1])
            #expect(Array(again.prefix(3).map(\.id)) == leased.map(\.id))
        }
    }

    @Test func leaseTakesAtMostMaxEvents() throws {
        try Self.withDatabase { database, _ in
            let stored = try Self.fill(database, count: 10)
            #expect(try database.lease(now: 1e9, maxEvents: 4, maxBytes: 1 << 20).map(\.event) == Array(stored[0..<4]))
            #expect(try database.lease(now: 1e9, maxEvents: 1, maxBytes: 1 << 20).map(\.event) == [stored[0]])
            #expect(try database.lease(now: 1e9, maxEvents: 0, maxBytes: 1 << 20).isEmpty)
            #expect(try database.lease(now: 1e9, maxEvents: 500, maxBytes: 1 << 20).map(\.event) == stored)
        }
    }

    @Test func leaseStopsBeforeMaxBytesButAlwaysReturnsOne() throws {
        try Self.withDatabase { database, _ in
            let stored = try Self.fill(database, count: 5, bytes: 100)
            #expect(stored.allSatisfy { $0.payload.count == 100 })
            func leasedCount(maxBytes: Int) throws -> Int {
                try database.lease(now: 1e9, maxEvents: 100, maxBytes: maxBytes).count
            }
            #expect(try leasedCount(maxBytes: 250) == 2)  // a third would make 300 > 250
            #expect(try leasedCount(maxBytes: 299) == 2)
            #expect(try leasedCount(maxBytes: 300) == 3)  // exactly at the bound is within it
            #expect(try leasedCount(maxBytes: 100) == 1)
            // An event larger than the whole budget still goes, alone, or it would block the outbox forever.
            #expect(try leasedCount(maxBytes: 99) == 1)
            #expect(try leasedCount(maxBytes: 1) == 1)
            #expect(try leasedCount(maxBytes: 0) == 1)
            #expect(try leasedCount(maxBytes: 10_000) == 5)

            let single = try database.lease(now: 1e9, maxEvents: 100, maxBytes: 1)
            #expect(single.map(\.event) == [stored[0]])
        }
    }

    @Test func leaseOfAnEmptyOutboxIsEmpty() throws {
        try Self.withDatabase { database, _ throws in
            #expect(try database.lease(now: 1e9, maxEvents: 10, maxBytes: 1 << 20).isEmpty)
            #expect(try database.stats().attemptedEvents == 0)
        }
    }

    @Test func leaseSkipsEventsNotYetDueAndCountsAttempts() throws {
        try Self.withDatabase { database, _ in
            let stored = try Self.fill(database, count: 4)
            let first = try database.lease(now: 1_000, maxEvents: 2, maxBytes: 1 << 20)
            #expect(first.map(\.event) == [stored[0], stored[1]])
            #expect(first.map(\.attempts) == [1, 1])

            try database.scheduleRetry(first.map(\.id), at: 2_000, error: "HTTP 503")

            // Before their time the retried events are invisible; the later ones are leased instead.
            let meanwhile = try database.lease(now: 1_999.5, maxEvents: 10, maxBytes: 1 << 20)
            #expect(meanwhile.map(\.event) == [stored[2], stored[3]])
            #expect(meanwhile.map(\.attempts) == [1, 1])
            try database.acknowledge(meanwhile.map(\.id))
            #expect(try database.lease(now: 1_999.999, maxEvents: 10, maxBytes: 1 << 20).isEmpty)

            // From their time on (next_attempt_at <= now) they are due again, on their second attempt.
            let retried = try database.lease(now: 2_000, maxEvents: 10, maxBytes: 1 << 20)
            #expect(retried.map(\.event) == [stored[0], stored[1]])
            #expect(retried.map(\.id) == first.map(\.id))
            #expect(retried.map(\.attempts) == [2, 2])
            let stats = try database.stats()
            #expect(stats.pendingEvents == 2)
            #expect(stats.attemptedEvents == 2)
        }
    }

    @Test func bringRetriesForwardMovesOnlyRetriesLaterThanTheBound() throws {
        try Self.withDatabase { database, _ in
            let stored = try Self.fill(database, count: 3)
            let leased = try database.lease(now: 10, maxEvents: 10, maxBytes: 1 << 20)
            try database.scheduleRetry([leased[0].id], at: 3_610, error: "HTTP 503")  // scheduled before a step back
            try database.scheduleRetry([leased[1].id], at: 15, error: "HTTP 503")
            try database.acknowledge([leased[2].id])

            #expect(try database.bringRetriesForward(notAfter: 20) == 1)
            // The one within the bound keeps its time; the other is due at the bound, not an hour later.
            #expect(try database.lease(now: 19.9, maxEvents: 10, maxBytes: 1 << 20).map(\.event) == [stored[1]])
            // In due order: the one due at 15 before the one brought forward to 20.
            #expect(try database.lease(now: 20, maxEvents: 10, maxBytes: 1 << 20).map(\.event) == [stored[1], stored[0]])
            #expect(try database.bringRetriesForward(notAfter: 20) == 0)
        }
    }

    @Test func scheduleRetryRecordsTheErrorAndOnlyTouchesTheGivenIDs() throws {
        try Self.withDatabase { database, _ in
            let stored = try Self.fill(database, count: 3)
            let leased = try database.lease(now: 10, maxEvents: 10, maxBytes: 1 << 20)
            try database.scheduleRetry([leased[1].id], at: 500, error: "connect: connection refused")

            #expect(try Self.lastError(database, stored[1].eventID) == "connect: connection refused")
            #expect(try Self.lastError(database, stored[0].eventID) == nil)
            #expect(try Self.lastError(database, stored[2].eventID) == nil)
            #expect(try database.lease(now: 499, maxEvents: 10, maxBytes: 1 << 20).map(\.event) == [stored[0], stored[2]])

            // A second failure replaces the error and the time.
            try database.scheduleRetry([leased[1].id], at: 900, error: "HTTP 429")
            #expect(try Self.lastError(database, stored[1].eventID) == "HTTP 429")
            #expect(try database.lease(now: 899, maxEvents: 10, maxBytes: 1 << 20).map(\.event) == [stored[0], stored[2]])
            let due = try database.lease(now: 900, maxEvents: 10, maxBytes: 1 << 20)
            // In due order: the two never retried (due at 0, oldest first), then the retry due at 900.
            #expect(due.map(\.event) == [stored[0], stored[2], stored[1]])
            #expect(due.map(\.attempts) == [4, 4, 2])

            // Unknown ids and an empty list are no-ops.
            try database.scheduleRetry([], at: 5_000, error: "nothing")
            try database.scheduleRetry([999_999], at: 5_000, error: "nothing")
            #expect(try database.lease(now: 1_000, maxEvents: 10, maxBytes: 1 << 20).count == 3)
        }
    }

    // MARK: Acknowledge

    @Test func acknowledgeDeletesExactlyTheGivenIDs() throws {
        try Self.withDatabase { database, _ in
            let stored = try Self.fill(database, count: 6)
            let leased = try database.lease(now: 1e9, maxEvents: 10, maxBytes: 1 << 20)
            #expect(leased.count == 6)

            try database.acknowledge([leased[1].id, leased[4].id])
            #expect(try database.events() == [stored[0], stored[2], stored[3], stored[5]])

            // Unknown, already acknowledged, and no ids at all change nothing.
            try database.acknowledge([leased[1].id, 999_999])
            try database.acknowledge([])
            #expect(try database.events() == [stored[0], stored[2], stored[3], stored[5]])
            #expect(try database.stats().pendingEvents == 4)

            try database.acknowledge([leased[0].id, leased[2].id, leased[3].id, leased[5].id])
            #expect(try database.events().isEmpty)
            #expect(try database.lease(now: 1e9, maxEvents: 10, maxBytes: 1 << 20).isEmpty)
        }
    }

    @Test func acknowledgeHandlesMoreIDsThanOneStatementTakes() throws {
        try Self.withDatabase { database, _ in
            let events = (1...1_203).map { Self.event($0, bytes: 40) }
            try database.commit(MeteringCommit(events: events), now: 1)
            let leased = try database.lease(now: 1e9, maxEvents: 2_000, maxBytes: 1 << 30)
            #expect(leased.count == 1_203)
            #expect(try database.stats().attemptedEvents == 1_203)  // every chunk of the attempt update ran

            let keep = Set([0, 499, 500, 999, 1_000, 1_202])
            try database.acknowledge(leased.indices.filter { !keep.contains($0) }.map { leased[$0].id })
            #expect(try database.events() == keep.sorted().map { events[$0] })
        }
    }

    // MARK: Dead letters

    @Test func deadLetterMovesEventsWithReasonAndAttempts() throws {
        try Self.withDatabase { database, _ in
            let stored = try Self.fill(database, count: 4)
            _ = try database.lease(now: 10, maxEvents: 2, maxBytes: 1 << 20)  // e1, e2: attempt 1
            let leased = try database.lease(now: 10, maxEvents: 3, maxBytes: 1 << 20)  // e1, e2: attempt 2; e3: 1
            #expect(leased.map(\.attempts) == [2, 2, 1])

            try database.deadLetter([leased[0].id, leased[2].id], reason: "HTTP 400: bad metrics", now: 1_234.5)

            let dead = try database.deadLetters()
            #expect(
                Self.summary(dead) == [
                    Self.summary(stored[0], attempts: 2, reason: "HTTP 400: bad metrics", deadAt: 1_234.5),
                    Self.summary(stored[2], attempts: 1, reason: "HTTP 400: bad metrics", deadAt: 1_234.5),
                ])
            #expect(try database.events() == [stored[1], stored[3]])
            #expect(try database.lease(now: 1e9, maxEvents: 10, maxBytes: 1 << 20).map(\.event) == [stored[1], stored[3]])

            let stats = try database.stats()
            #expect(stats.pendingEvents == 2)
            #expect(stats.deadLetters == 2)

            // Unknown ids are ignored; nothing new appears among the dead letters.
            try database.deadLetter([999_999], reason: "nothing", now: 2_000)
            try database.deadLetter([], reason: "nothing", now: 2_000)
            #expect(try database.deadLetters() == dead)
        }
    }

    @Test func replayMovesOnlyTheNamedDeadLetters() throws {
        try Self.withDatabase { database, _ in
            let stored = try Self.fill(database, count: 5)
            _ = try database.lease(now: 10, maxEvents: 1, maxBytes: 1 << 20)  // e1 on its second attempt below
            let leased = try database.lease(now: 10, maxEvents: 5, maxBytes: 1 << 20)
            try database.deadLetter([leased[0].id, leased[1].id], reason: "HTTP 422", now: 100)
            try database.deadLetter([leased[3].id], reason: "HTTP 413", now: 200)
            try database.acknowledge([leased[2].id, leased[4].id])
            #expect(try database.events().isEmpty)
            #expect(try database.deadLetters().map(\.event) == [stored[0], stored[1], stored[3]])

            // Unknown ids (and a pending or delivered one) are ignored; the count says what moved.
            #expect(try database.replay(eventIDs: [stored[0].eventID, "no-such-event", stored[2].eventID]) == 1)
            #expect(try database.replay(eventIDs: []) == 0)
            #expect(try database.replay(eventIDs: ["no-such-event"]) == 0)
            #expect(try database.events() == [stored[0]])
            #expect(
                Self.summary(try database.deadLetters()) == [
                    Self.summary(stored[1], attempts: 1, reason: "HTTP 422", deadAt: 100),
                    Self.summary(stored[3], attempts: 1, reason: "HTTP 413", deadAt: 200),
                ])
            #expect(try Self.lastError(database, stored[0].eventID) == "replayed: HTTP 422")

            // Due at once, and it keeps its attempts: attempted events are never merged.
            let stats = try database.stats()
            #expect(stats.pendingEvents == 1 && stats.attemptedEvents == 1 && stats.deadLetters == 2)
            let replayed = try database.lease(now: 0, maxEvents: 10, maxBytes: 1 << 20)
            #expect(replayed.map(\.event) == [stored[0]])
            #expect(replayed.map(\.attempts) == [3])
        }
    }

    @Test func replayOfAllMovesEveryDeadLetterInOrder() throws {
        try Self.withDatabase { database, _ in
            let stored = try Self.fill(database, count: 4)
            let leased = try database.lease(now: 10, maxEvents: 4, maxBytes: 1 << 20)
            try database.deadLetter([leased[2].id], reason: "first", now: 100)
            try database.deadLetter([leased[0].id, leased[3].id], reason: "second", now: 200)
            #expect(try database.events() == [stored[1]])

            #expect(try database.replay(eventIDs: nil) == 3)
            #expect(try database.deadLetters().isEmpty)
            #expect(try database.replay(eventIDs: nil) == 0)
            // Back at the end of the queue, in the order they died.
            #expect(try database.events() == [stored[1], stored[2], stored[0], stored[3]])
            let stats = try database.stats()
            #expect(stats.pendingEvents == 4 && stats.attemptedEvents == 4 && stats.deadLetters == 0)

            let again = try database.lease(now: 10, maxEvents: 10, maxBytes: 1 << 20)
            #expect(again.map(\.event) == [stored[1], stored[2], stored[0], stored[3]])
            #expect(again.map(\.attempts) == [2, 2, 2, 2])
        }
    }

    @Test func anEventDeadAgainAfterReplayIsOneDeadLetter() throws {
        try Self.withDatabase { database, _ in
            let stored = try Self.fill(database, count: 1)
            let first = try database.lease(now: 10, maxEvents: 1, maxBytes: 1 << 20)
            try database.deadLetter(first.map(\.id), reason: "HTTP 400", now: 100)
            #expect(try database.replay(eventIDs: [stored[0].eventID]) == 1)
            let second = try database.lease(now: 10, maxEvents: 1, maxBytes: 1 << 20)
            #expect(second.map(\.attempts) == [2])
            try database.deadLetter(second.map(\.id), reason: "HTTP 400 again", now: 300)
            #expect(
                Self.summary(try database.deadLetters()) == [
                    Self.summary(stored[0], attempts: 2, reason: "HTTP 400 again", deadAt: 300)
                ])
            #expect(try database.events().isEmpty)
        }
    }

    // MARK: Stats

    @Test func statsCountPendingBytesDeadAttemptedAndOldest() throws {
        try Self.withDatabase { database, _ in
            let empty = try database.stats()
            #expect(empty.pendingEvents == 0 && empty.pendingBytes == 0 && empty.deadLetters == 0)
            #expect(empty.attemptedEvents == 0 && empty.oldestPendingPeriodStart == nil)
            #expect(empty.databaseBytes == (try database.usedBytes()))
            #expect(empty.databaseBytes > 0)

            // Sizes 100, 150, 200, 250, 300, 350; periods start at 30·n.
            let stored = (1...6).map { Self.event($0, bytes: 50 + 50 * $0) }
            try database.commit(MeteringCommit(events: [stored[2], stored[0], stored[1]]), now: 1)
            try database.commit(MeteringCommit(events: [stored[3], stored[4], stored[5]]), now: 2)
            var stats = try database.stats()
            #expect(stats.pendingEvents == 6)
            #expect(stats.pendingBytes == 1_350)
            #expect(stats.attemptedEvents == 0)
            #expect(stats.deadLetters == 0)
            #expect(stats.oldestPendingPeriodStart == 30)  // e1, though stored second
            #expect(stats.databaseBytes == (try database.usedBytes()))

            let leased = try database.lease(now: 10, maxEvents: 3, maxBytes: 1 << 20)  // e3, e1, e2
            #expect(leased.map(\.event) == [stored[2], stored[0], stored[1]])
            stats = try database.stats()
            #expect(stats.attemptedEvents == 3 && stats.pendingEvents == 6)

            try database.acknowledge([leased[1].id])  // e1 delivered: e2 is now the oldest
            try database.deadLetter([leased[0].id], reason: "HTTP 400", now: 20)  // e3 dead
            try database.scheduleRetry([leased[2].id], at: 1e9, error: "timeout")  // e2 waits, still pending
            stats = try database.stats()
            #expect(stats.pendingEvents == 4)
            #expect(stats.pendingBytes == 150 + 250 + 300 + 350)
            #expect(stats.deadLetters == 1)
            #expect(stats.attemptedEvents == 1)
            #expect(stats.oldestPendingPeriodStart == 60)
            #expect(stats.databaseBytes == (try database.usedBytes()))

            try database.replay(eventIDs: nil)
            stats = try database.stats()
            #expect(stats.pendingEvents == 5 && stats.deadLetters == 0 && stats.attemptedEvents == 2)
            #expect(stats.pendingBytes == 150 + 200 + 250 + 300 + 350)
        }
    }

    @Test func statsEncodeWithTheDocumentedKeys() throws {
        // OutboxStats has no public initializer: take real ones.
        let stats = try Self.withDatabase { database, _ in
            _ = try Self.fill(database, count: 3)
            _ = try database.lease(now: 10, maxEvents: 1, maxBytes: 1 << 20)
            return try database.stats()
        }
        #expect(stats.oldestPendingPeriodStart == 30)
        let object = try #require(
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(stats)) as? [String: Any])
        #expect(
            Set(object.keys) == [
                "pending_events", "pending_bytes", "dead_letters", "dead_letter_bytes", "attempted_events",
                "oldest_pending_period_start",
                "database_bytes",
            ])
        #expect(try JSONDecoder().decode(OutboxStats.self, from: JSONEncoder().encode(stats)) == stats)
    }

    // MARK: Files

    @Test func deliveryStateSurvivesReopening() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("agent.sqlite").path
            let stored: [OutboxEvent]
            let expectedStats: OutboxStats
            let expectedDead: [DeadLetter]
            do {
                let database = try AgentDatabase.open(path: path)
                stored = try Self.fill(database, count: 6)
                let leased = try database.lease(now: 100, maxEvents: 5, maxBytes: 1 << 20)
                try database.acknowledge([leased[0].id])
                try database.deadLetter([leased[1].id], reason: "HTTP 400", now: 150)
                try database.scheduleRetry([leased[2].id], at: 5_000, error: "HTTP 503")
                expectedStats = try database.stats()
                expectedDead = try database.deadLetters()
                #expect(expectedStats.pendingEvents == 4 && expectedStats.attemptedEvents == 3)
                #expect(expectedStats.deadLetters == 1)
            }
            // Every connection closed; a restarted agent sees the same outbox.
            let reopened = try AgentDatabase.open(path: path)
            #expect(try reopened.events() == [stored[2], stored[3], stored[4], stored[5]])
            #expect(try reopened.deadLetters() == expectedDead)
            #expect(try reopened.deadLetters().map(\.event) == [stored[1]])
            let stats = try reopened.stats()
            #expect(stats.pendingEvents == expectedStats.pendingEvents)
            #expect(stats.pendingBytes == expectedStats.pendingBytes)
            #expect(stats.deadLetters == expectedStats.deadLetters)
            #expect(stats.attemptedEvents == expectedStats.attemptedEvents)
            #expect(stats.oldestPendingPeriodStart == expectedStats.oldestPendingPeriodStart)
            #expect(try Self.lastError(reopened, stored[2].eventID) == "HTTP 503")

            // The retry time and the attempt counts were kept too.
            let due = try reopened.lease(now: 4_999, maxEvents: 10, maxBytes: 1 << 20)
            #expect(due.map(\.event) == [stored[3], stored[4], stored[5]])
            #expect(due.map(\.attempts) == [2, 2, 1])
            let later = try reopened.lease(now: 5_000, maxEvents: 10, maxBytes: 1 << 20)
            // In due order: those due at 0 first, the retry due at 5,000 last.
            #expect(later.map(\.event) == [stored[3], stored[4], stored[5], stored[2]])
            #expect(later.map(\.attempts) == [3, 3, 2, 2])

            #expect(try reopened.replay(eventIDs: nil) == 1)
            #expect(try reopened.events().map(\.eventID) == ["e3", "e4", "e5", "e6", "e2"])
        }
    }
}
