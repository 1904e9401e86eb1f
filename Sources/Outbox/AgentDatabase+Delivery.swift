public import Foundation
import GRDB
import UsageModel

/// A pending event handed to the shipper.
public struct LeasedEvent: Sendable, Equatable {
    /// The row id: the outbox's own order.
    public var id: Int64
    public var event: OutboxEvent
    /// Attempts including this one.
    public var attempts: Int
}

/// A permanently rejected event, kept until replayed.
public struct DeadLetter: Sendable, Equatable {
    public var event: OutboxEvent
    public var attempts: Int
    public var reason: String
    public var deadAt: Double
}

/// Counts and sizes of the outbox.
public struct OutboxStats: Sendable, Equatable, Codable {
    public var pendingEvents: Int
    public var pendingBytes: Int
    public var deadLetters: Int
    /// Payload bytes of the dead letters: usage not billed yet, kept under `outbox.max_bytes`.
    public var deadLetterBytes: Int
    /// Pending events that were offered to a consumer at least once.
    public var attemptedEvents: Int
    /// Unix seconds of the oldest pending period's start, if any.
    public var oldestPendingPeriodStart: Int64?
    /// Bytes of the database file in use (pages minus free pages).
    public var databaseBytes: Int

    public init(
        pendingEvents: Int, pendingBytes: Int, deadLetters: Int, deadLetterBytes: Int = 0, attemptedEvents: Int,
        oldestPendingPeriodStart: Int64?, databaseBytes: Int
    ) {
        self.pendingEvents = pendingEvents
        self.pendingBytes = pendingBytes
        self.deadLetters = deadLetters
        self.deadLetterBytes = deadLetterBytes
        self.attemptedEvents = attemptedEvents
        self.oldestPendingPeriodStart = oldestPendingPeriodStart
        self.databaseBytes = databaseBytes
    }

    enum CodingKeys: String, CodingKey {
        case pendingEvents = "pending_events", pendingBytes = "pending_bytes", deadLetters = "dead_letters"
        case deadLetterBytes = "dead_letter_bytes"
        case attemptedEvents = "attempted_events", oldestPendingPeriodStart = "oldest_pending_period_start"
        case databaseBytes = "database_bytes"
    }
}

extension AgentDatabase {
    /// The due events, up to `maxEvents` and about `maxBytes` of payload (always at least one),
    /// counted as attempted in the same transaction — before they are sent, so an event that may have
    /// reached a consumer is never merged (see `makeRoom`).
    ///
    /// In due order, oldest first among events due at the same time: never-offered events are all
    /// due at once (0), in the order they were stored; a retried event is due at its retry time.
    /// The `events_due` index gives that order, so a lease reads its batch and no more, however
    /// many events wait. The lease of an event never offered before is durable (fsynced) before it
    /// is sent: were it lost to a power cut, the event could be merged after reaching a consumer.
    ///
    /// `holdSeconds` keeps an event back until that long after its period ended (fleet pacing: the
    /// host's offset in the period). Only the latest periods' events are held, and they sit at the
    /// end of the never-offered run of the index, so a lease passes at most those by. An event whose
    /// period ends after `now` (the wall clock stepped back) is not held: held from its period's
    /// end, it would wait as long as the step.
    ///
    /// `excluding`: the row ids of a batch still being sent (the shipper takes the next batch while
    /// the current one waits for its acknowledgements). A leased event stays due until its outcome
    /// is recorded; this lease passes it over and is otherwise the same as any, so an event stored
    /// meanwhile still goes before older retries.
    public func lease(
        now: Double, maxEvents: Int, maxBytes: Int, holdSeconds: Double = 0, excluding inFlight: [Int64] = []
    ) throws(OutboxError) -> [LeasedEvent] {
        // Never-offered events are due at 0 (a retry time is a wall time after 1970) and come first
        // in due order: when any is left, this lease counts its first attempt and must be durable.
        try write("lease events", durability: .durableIf { db in
            try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM events WHERE next_attempt_at = 0)")) ?? true
        }) { db in
            // A cursor reads each row in place; `fetchAll` would copy every row, payload included,
            // before it is read.
            let rows = try Row.fetchCursor(
                db.cachedStatement(
                    sql: """
                        SELECT id, event_id, event_type, instance_id, period_start, period_end, payload,
                               COALESCE((SELECT attempts FROM event_attempts a WHERE a.id = events.id), 0), user_id, org_id
                        FROM events INDEXED BY events_due
                        WHERE next_attempt_at <= ? AND (period_end <= ? OR period_end > ?) AND id NOT IN \(idList)
                        ORDER BY next_attempt_at, id LIMIT ?
                        """),
                arguments: [now, holdSeconds > 0 ? now - holdSeconds : Double.infinity, now, idArray(inFlight),
                            max(0, maxEvents)])
            var leased: [LeasedEvent] = []
            var bytes = 0
            // Columns by position, in the SELECT's order: a lookup by name folds its case per row.
            while let row = try rows.next() {
                let payload: Data = row[6]
                if !leased.isEmpty, bytes + payload.count > maxBytes { break }
                bytes += payload.count
                leased.append(
                    LeasedEvent(
                        id: row[0],
                        event: OutboxEvent(
                            eventID: row[1], eventType: row[2], instanceID: row[3], periodStart: row[4], periodEnd: row[5],
                            payload: payload, userID: row[8], orgID: row[9]),
                        attempts: (row[7] as Int) + 1))
            }
            if !leased.isEmpty {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO event_attempts (id, attempts) SELECT value, 1 FROM json_each(?) WHERE true
                        ON CONFLICT (id) DO UPDATE SET attempts = attempts + 1
                        """
                ).execute(arguments: [idArray(leased.map(\.id))])
            }
            return leased
        }
    }

    /// Removes delivered events.
    public func acknowledge(_ ids: [Int64]) throws(OutboxError) {
        try write("acknowledge events", durability: .relaxed) { db in
            guard !ids.isEmpty else { return }
            try db.cachedStatement(sql: "DELETE FROM events WHERE id IN \(idList)").execute(arguments: [idArray(ids)])
        }
    }

    /// Puts events back for a later attempt.
    public func scheduleRetry(_ ids: [Int64], at time: Double, error: String) throws(OutboxError) {
        try write("schedule retry", durability: .relaxed) { db in
            guard !ids.isEmpty else { return }
            try db.cachedStatement(sql: "UPDATE events SET next_attempt_at = ?, last_error = ? WHERE id IN \(idList)")
                .execute(arguments: [time, error, idArray(ids)])
        }
    }

    /// Brings every retry scheduled after `time` forward to `time`, returning how many moved. A retry
    /// is never scheduled further ahead than the retry cap, so one that is (the wall clock stepped
    /// back, while the agent ran or while it was down) would otherwise wait as long as the step.
    @discardableResult
    public func bringRetriesForward(notAfter time: Double) throws(OutboxError) -> Int {
        try write("reschedule retries", durability: .relaxed) { db in
            try db.cachedStatement(sql: "UPDATE events SET next_attempt_at = ? WHERE next_attempt_at > ?")
                .execute(arguments: [time, time])
            return db.changesCount
        }
    }

    /// Moves permanently rejected events to the dead letters, with the reason.
    public func deadLetter(_ ids: [Int64], reason: String, now: Double) throws(OutboxError) {
        try write("dead-letter events", durability: .relaxed) { db in
            for chunk in ids.chunked(500) {
                let list = placeholders(chunk.count)
                try db.execute(
                    sql: """
                        INSERT INTO dead_letters
                            (event_id, event_type, instance_id, period_start, period_end, payload, attempts, reason, dead_at,
                             user_id, org_id)
                        SELECT event_id, event_type, instance_id, period_start, period_end, payload,
                               COALESCE((SELECT attempts FROM event_attempts a WHERE a.id = events.id), 0), ?, ?,
                               user_id, org_id
                        FROM events WHERE id IN (\(list))
                        ON CONFLICT (event_id) DO UPDATE SET
                            payload = excluded.payload, attempts = excluded.attempts, reason = excluded.reason,
                            dead_at = excluded.dead_at, user_id = excluded.user_id, org_id = excluded.org_id
                        """,
                    arguments: StatementArguments([reason, now] as [any DatabaseValueConvertible]) + StatementArguments(chunk))
                try db.execute(sql: "DELETE FROM events WHERE id IN (\(list))", arguments: StatementArguments(chunk))
            }
        }
    }

    /// Dead letters, oldest first.
    public func deadLetters() throws(OutboxError) -> [DeadLetter] {
        try read("read dead letters") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM dead_letters ORDER BY id").map { row in
                DeadLetter(
                    event: OutboxEvent(row: row),
                    attempts: row["attempts"], reason: row["reason"], deadAt: row["dead_at"])
            }
        }
    }

    /// Moves dead letters back to pending, due now: the given event ids, or all when nil.
    /// Returns how many moved; ids that are not dead letters are ignored.
    @discardableResult
    public func replay(eventIDs: [String]?) throws(OutboxError) -> Int {
        try write("replay dead letters") { db in
            let filter: String
            var arguments = StatementArguments()
            if let eventIDs {
                guard !eventIDs.isEmpty else { return 0 }
                filter = "WHERE event_id IN (\(placeholders(eventIDs.count)))"
                arguments = StatementArguments(eventIDs)
            } else {
                filter = ""
            }
            try db.execute(
                sql: """
                    INSERT INTO events
                        (event_id, event_type, instance_id, period_start, period_end, payload, created_at,
                         next_attempt_at, last_error, user_id, org_id)
                    SELECT event_id, event_type, instance_id, period_start, period_end, payload, CAST(dead_at AS INTEGER),
                           0, 'replayed: ' || reason, user_id, org_id
                    FROM dead_letters \(filter) ORDER BY id
                    """,
                arguments: arguments)
            let moved = db.changesCount
            // A replayed event was offered before: it keeps its attempts, so it is never merged.
            try db.execute(
                sql: """
                    INSERT INTO event_attempts (id, attempts)
                    SELECT (SELECT id FROM events e WHERE e.period_start = d.period_start AND e.event_id = d.event_id),
                           d.attempts
                    FROM (SELECT period_start, event_id, attempts FROM dead_letters \(filter)) d WHERE d.attempts > 0
                    """,
                arguments: arguments)
            try db.execute(sql: "DELETE FROM dead_letters \(filter)", arguments: arguments)
            if moved > 0 { db.afterNextTransaction(onCommit: { [commits] _ in commits.eventsStored() }) }
            return moved
        }
    }

    public func stats() throws(OutboxError) -> OutboxStats {
        try read("read outbox stats") { db in try Self.stats(db) }
    }

    /// The outbox's figures in constant time: the totals the triggers keep (`outboxTotalsSchema`)
    /// and the first entry of the period-start index.
    static func stats(_ db: Database) throws -> OutboxStats {
        let row = try Row.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT pending_events, pending_bytes, attempted_events, dead_letters, dead_letter_bytes,
                           (SELECT MIN(period_start) FROM events) AS oldest
                    FROM outbox_totals WHERE id = 1
                    """))
        guard let row else { throw DatabaseError(resultCode: .SQLITE_CORRUPT, message: "outbox_totals has no row") }
        return OutboxStats(
            pendingEvents: row["pending_events"], pendingBytes: row["pending_bytes"], deadLetters: row["dead_letters"],
            deadLetterBytes: row["dead_letter_bytes"], attemptedEvents: row["attempted_events"],
            oldestPendingPeriodStart: row["oldest"], databaseBytes: try Self.usedBytes(db))
    }

    /// The outbox's figures counted row by row, which the kept totals must always equal (tests
    /// check it); O(n).
    public func recountedStats() throws(OutboxError) -> OutboxStats {
        try read("recount outbox stats") { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) AS count, COALESCE(SUM(length(payload)), 0) AS bytes,
                           COALESCE(SUM(EXISTS (SELECT 1 FROM event_attempts a WHERE a.id = events.id)), 0) AS attempted,
                           MIN(period_start) AS oldest
                    FROM events
                    """)!
            let dead = try Row.fetchOne(
                db, sql: "SELECT COUNT(*) AS count, COALESCE(SUM(length(payload)), 0) AS bytes FROM dead_letters")!
            return OutboxStats(
                pendingEvents: row["count"], pendingBytes: row["bytes"], deadLetters: dead["count"],
                deadLetterBytes: dead["bytes"], attemptedEvents: row["attempted"], oldestPendingPeriodStart: row["oldest"],
                databaseBytes: try Self.usedBytes(db))
        }
    }

    /// When the next pending event falls due (its retry time; 0 for one never offered), or nil
    /// when none is pending: the first entry of the `events_due` index.
    public func nextAttemptAt() throws(OutboxError) -> Double? {
        try read("read the next due time") { db in
            try Double.fetchOne(db.cachedStatement(sql: "SELECT MIN(next_attempt_at) FROM events"))
        }
    }

    /// When `lease(now:…holdSeconds:)` next has an event to give: the next retry after `now`, or the
    /// end of the hold of an event due by `now` but held, whichever comes first; nil when nothing is
    /// pending. The held events are read from the due index's run of events due by `now`, at most
    /// `scanLimit` of them (held events are the latest periods': a few per instance).
    public func nextLeaseAt(now: Double, holdSeconds: Double, scanLimit: Int = 100_000) throws(OutboxError) -> Double? {
        guard holdSeconds > 0 else { return try nextAttemptAt() }
        return try read("read the next due time") { db in
            let retry = try Double.fetchOne(
                db.cachedStatement(sql: "SELECT MIN(next_attempt_at) FROM events WHERE next_attempt_at > ?"),
                arguments: [now])
            let heldPeriodEnd = try Double.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT MIN(period_end) FROM (SELECT period_end FROM events INDEXED BY events_due
                        WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?)
                        """),
                arguments: [now, scanLimit])
            let released = heldPeriodEnd.map { $0 + holdSeconds }
            switch (retry, released) {
            case (nil, nil): return nil
            case (let retry?, nil): return retry
            case (nil, let released?): return released
            case (let retry?, let released?): return min(retry, released)
            }
        }
    }

    /// Bytes of the database in use: (pages − free pages) × page size, O(1).
    public func usedBytes() throws(OutboxError) -> Int {
        try read("measure database") { db in try Self.usedBytes(db) }
    }

    static func usedBytes(_ db: Database) throws -> Int {
        let pages = try Int.fetchOne(db.cachedStatement(sql: "PRAGMA page_count")) ?? 0
        let free = try Int.fetchOne(db.cachedStatement(sql: "PRAGMA freelist_count")) ?? 0
        let size = try Int.fetchOne(db.cachedStatement(sql: "PRAGMA page_size")) ?? 4096
        return (pages - free) * size
    }

    /// Keeps the database under `maxBytes`. Past 90 % of it, audit records no undelivered usage
    /// needs are pruned first, whatever their age past an hour (`pruneAuditRecords`; an hour lets
    /// the period after a fresh gap close). Then old pending usage events of the same instance that
    /// were never offered to a consumer are merged into longer periods (totals are kept exactly; see
    /// `UsageEvent.merging`), oldest first, until under 80 % or nothing more can be merged.
    /// Undelivered events are never deleted. Throws `.full` if the database is still over the bound.
    public func makeRoom(maxBytes: Int, now: Int64 = Int64(Date().timeIntervalSince1970)) throws(OutboxError) {
        guard try usedBytes() > maxBytes / 10 * 9 else { return }
        try pruneAuditRecords(recordedBefore: now - 3_600)
        var afterID: Int64 = 0
        while try usedBytes() > maxBytes / 10 * 8 {
            guard let next = try mergePending(after: afterID, limit: 5000) else { break }
            afterID = next
        }
        let used = try usedBytes()
        if used > maxBytes {
            throw .full(path: path, usedBytes: used, maxBytes: maxBytes)
        }
    }

    /// Merges runs of contiguous, never-attempted usage events of one owner among the `limit`
    /// oldest such events after row `afterID`. A merged event takes the row id of the first event of
    /// its run, so the outbox's oldest-first order holds. Returns the last row id looked at, or nil
    /// when there was nothing left to look at.
    func mergePending(after afterID: Int64, limit: Int) throws(OutboxError) -> Int64? {
        try write("merge pending events") { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, payload FROM events
                    WHERE event_type = ? AND id > ?
                        AND NOT EXISTS (SELECT 1 FROM event_attempts a WHERE a.id = events.id)
                    ORDER BY id LIMIT ?
                    """,
                arguments: [UsageEvent.eventType, afterID, limit])
            guard let lastID = rows.last?["id"] as Int64? else { return nil }
            let decoder = JSONDecoder()
            var byInstance: [String: [(id: Int64, event: UsageEvent)]] = [:]
            for row in rows {
                guard let event = try? decoder.decode(UsageEvent.self, from: row["payload"] as Data) else { continue }
                byInstance[event.instanceID, default: []].append((row["id"], event))
            }
            for (_, entries) in byInstance {
                let sorted = entries.sorted { $0.event.period.start < $1.event.period.start }
                var run: [(id: Int64, event: UsageEvent)] = []
                func flush() throws {
                    defer { run = [] }
                    guard run.count > 1, let merged = UsageEvent.merging(run.map(\.event)),
                        let version = UsageSchemaVersion(rawValue: merged.version)
                    else { return }
                    let payload = try UsageEventEncoder(version: version).encode(merged)
                    let ids = run.map(\.id)
                    try db.execute(
                        sql: "DELETE FROM events WHERE id IN (\(placeholders(ids.count)))",
                        arguments: StatementArguments(ids))
                    try db.execute(
                        sql: """
                            INSERT INTO events (id, event_id, event_type, instance_id, period_start, period_end, payload,
                                                created_at, next_attempt_at, user_id, org_id)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
                            """,
                        arguments: [ids.min(), merged.eventID, merged.eventType, merged.instanceID, merged.period.start,
                                    merged.period.end, payload, merged.timestamp, merged.userID, merged.orgID])
                }
                for entry in sorted {
                    // A run ends at a hole in time or where the owner or format changes.
                    if let last = run.last?.event,
                        last.period.end != entry.event.period.start || !UsageEvent.canMerge(last, entry.event)
                    {
                        try flush()
                    }
                    run.append(entry)
                }
                try flush()
            }
            return lastID
        }
    }
}

/// `IN` over ids bound as one JSON array: one statement, prepared once and kept in the
/// connection's cache whatever the batch size (a placeholder per id prepares, and authorizes, a
/// new statement for every size). Use with `idArray`.
let idList = "(SELECT value FROM json_each(?))"

/// The JSON array `idList` reads.
func idArray(_ ids: [Int64]) -> String {
    "[" + ids.map(String.init).joined(separator: ",") + "]"
}

func placeholders(_ count: Int) -> String {
    Array(repeating: "?", count: count).joined(separator: ",")
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}

extension OutboxEvent {
    /// The event in a row of `events` or `dead_letters`, read by column name.
    init(row: Row) {
        self.init(
            eventID: row["event_id"], eventType: row["event_type"], instanceID: row["instance_id"],
            periodStart: row["period_start"], periodEnd: row["period_end"], payload: row["payload"],
            userID: row["user_id"], orgID: row["org_id"])
    }
}
