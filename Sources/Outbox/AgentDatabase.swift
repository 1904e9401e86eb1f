public import Foundation
public import GRDB

#if canImport(Glibc)
import Glibc
public import UsageModel
#endif

/// The agent's one SQLite database: the outbox of events, the metering checkpoints, and the audit
/// records of gaps and baselines.
///
/// WAL mode (a `DatabasePool`) in production, so readers (the API, `outbox stats`) never block the
/// sampler's writes; `synchronous = FULL`, so a committed period survives a power cut, not only a
/// crash. Every write method is one transaction.
public struct AgentDatabase: Sendable {
    public let writer: any DatabaseWriter
    /// The file, for error messages; ":memory:" for a test database.
    public let path: String
    /// Who hears of the events each metering commit stores.
    public let commits = CommitFeed()

    /// Opens (creating if needed) the database at `path` and migrates it. A write that finds the
    /// database locked by another process waits up to `busyTimeoutSeconds`, then fails naming the file.
    /// A new file is created readable and writable by its owner only (0600) whatever the umask;
    /// SQLite gives its WAL and shared-memory files the database file's mode. A file written by a
    /// newer hostmeter is refused (`OutboxError.newerSchema`).
    public static func open(path: String, busyTimeoutSeconds: Double = 10) throws(OutboxError) -> AgentDatabase {
        try createOwnerOnly(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeoutSeconds)
        configuration.prepareDatabase { db in
            // `synchronous` is set again below: GRDB's pool sets the writer to NORMAL after this.
            // Debian builds SQLite with SECURE_DELETE, which zeroes every deleted record and writes
            // each page a delete frees, again, as zeros: acknowledging a batch wrote 716 bytes of
            // WAL per event where FAST writes 487. FAST zeroes what sits on pages written anyway.
            // The file is 0600 and holds usage already delivered, not secrets.
            try db.execute(sql: "PRAGMA synchronous = FULL; PRAGMA secure_delete = FAST")
        }
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            // Opening a pool puts its writer in WAL mode with `synchronous = NORMAL`, after
            // `prepareDatabase`: every durable write would go unsynced until the first relaxed one
            // set FULL back (see `write`).
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            return try AgentDatabase(writer: pool, path: path)
        } catch let error as OutboxError {
            throw error
        } catch {
            throw .cannotOpen(path: path, reason: Self.reason(error))
        }
    }

    /// A private in-memory database, for tests.
    public static func inMemory() throws(OutboxError) -> AgentDatabase {
        do {
            return try AgentDatabase(writer: DatabaseQueue(), path: ":memory:")
        } catch let error as OutboxError {
            throw error
        } catch {
            throw .cannotOpen(path: ":memory:", reason: Self.reason(error))
        }
    }

    init(writer: any DatabaseWriter, path: String) throws(OutboxError) {
        self.writer = writer
        self.path = path
        do {
            try Self.refuseNewerSchema(writer, path: path)
            try Self.migrator.migrate(writer)
            try writer.write { db in
                if try Int.fetchOne(db, sql: "PRAGMA user_version") != Self.schemaVersion {
                    try db.execute(sql: "PRAGMA user_version = \(Self.schemaVersion)")
                }
            }
        } catch let error as OutboxError {
            throw error
        } catch {
            throw .cannotOpen(path: path, reason: Self.reason(error))
        }
    }

    /// This build's schema version: the number of its migrations, stored in `PRAGMA user_version`
    /// after migrating so that any tool can tell which hostmeter a file is for.
    public static var schemaVersion: Int { migrator.migrations.count }

    /// Throws `.newerSchema` for a database migrated by a newer hostmeter: one that has applied
    /// migrations this build does not know, or stores a schema version above this build's. Such a
    /// file may hold tables, columns or meanings this build would misread or damage, so it is not
    /// touched (GRDB's migrator would ignore unknown migrations and carry on).
    static func refuseNewerSchema(_ writer: any DatabaseWriter, path: String) throws {
        let (applied, stored) = try writer.read { db in
            (try migrator.appliedIdentifiers(db), try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0)
        }
        let unknown = applied.subtracting(migrator.migrations).sorted()
        guard unknown.isEmpty, stored <= schemaVersion else {
            throw OutboxError.newerSchema(
                path: path, version: max(stored, applied.count), ours: schemaVersion, unknownMigrations: unknown)
        }
    }

    /// Creates `path` empty with mode 0600 when it does not exist yet: SQLite would create it 0644
    /// less the umask, readable by others outside systemd (whose unit sets `UMask=0077`). An
    /// existing file keeps the mode it has.
    static func createOwnerOnly(_ path: String) throws(OutboxError) {
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            if errno == EEXIST { return }
            throw .cannotOpen(path: path, reason: "cannot create the file: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        // The umask may have taken bits from 0600 (a umask of 0277 leaves 0400); set them exactly.
        guard fchmod(descriptor, 0o600) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(path)
            throw .cannotOpen(path: path, reason: "cannot set the file's mode to 0600: \(reason)")
        }
    }

    /// Migrations have fixed names and never change once shipped; new ones are appended.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1 events, checkpoints, gaps, baselines") { db in
            try db.execute(
                sql: """
                    CREATE TABLE events (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        event_id TEXT NOT NULL UNIQUE,
                        event_type TEXT NOT NULL,
                        instance_id TEXT NOT NULL,
                        period_start INTEGER NOT NULL,
                        period_end INTEGER NOT NULL,
                        payload BLOB NOT NULL,
                        created_at INTEGER NOT NULL,
                        CHECK (period_end > period_start)
                    );
                    CREATE TABLE checkpoints (
                        instance_id TEXT PRIMARY KEY NOT NULL,
                        format INTEGER NOT NULL,
                        state BLOB NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE TABLE metering_gaps (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        instance_id TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        from_time INTEGER NOT NULL,
                        to_time INTEGER NOT NULL,
                        detail TEXT NOT NULL,
                        recorded_at INTEGER NOT NULL,
                        CHECK (to_time >= from_time)
                    );
                    CREATE TABLE metering_baselines (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        instance_id TEXT NOT NULL,
                        boot_id TEXT NOT NULL,
                        wall_ns INTEGER NOT NULL,
                        counters TEXT NOT NULL,
                        recorded_at INTEGER NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v2 delivery state and dead letters") { db in
            try db.execute(
                sql: """
                    ALTER TABLE events ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE events ADD COLUMN next_attempt_at REAL NOT NULL DEFAULT 0;
                    ALTER TABLE events ADD COLUMN last_error TEXT;
                    CREATE TABLE dead_letters (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        event_id TEXT NOT NULL UNIQUE,
                        event_type TEXT NOT NULL,
                        instance_id TEXT NOT NULL,
                        period_start INTEGER NOT NULL,
                        period_end INTEGER NOT NULL,
                        payload BLOB NOT NULL,
                        attempts INTEGER NOT NULL,
                        reason TEXT NOT NULL,
                        dead_at REAL NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v3 threshold rules and state") { db in
            try db.execute(
                sql: """
                    CREATE TABLE threshold_rules (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        rules TEXT NOT NULL,
                        updated_at REAL NOT NULL
                    );
                    CREATE TABLE threshold_state (
                        rule TEXT NOT NULL,
                        instance_id TEXT NOT NULL,
                        state TEXT NOT NULL,
                        PRIMARY KEY (rule, instance_id)
                    );
                    """)
        }
        migrator.registerMigration("v4 instances registered over the API") { db in
            try db.execute(
                sql: """
                    CREATE TABLE instances (
                        instance_id TEXT PRIMARY KEY,
                        manifest TEXT NOT NULL,
                        updated_at REAL NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v5 outbox totals and due index") { db in
            try db.execute(sql: outboxTotalsSchema)
        }
        migrator.registerMigration("v6 event ids unique by period") { db in
            try db.execute(sql: eventIDsByPeriodSchema)
        }
        migrator.registerMigration("v7 event owners") { db in
            try db.execute(sql: eventOwnersSchema)
        }
        migrator.registerMigration("v8 attempts apart from events") { db in
            try db.execute(sql: eventAttemptsSchema)
        }
        migrator.registerMigration("v9 event chains") { db in
            try db.execute(sql: eventChainsSchema)
        }
        return migrator
    }

    /// Event ids unique by period (v6): the `events` table rebuilt with `UNIQUE (period_start,
    /// event_id)` in place of v1's `UNIQUE (event_id)`.
    ///
    /// An event id is a name-based UUID of the event's type, host, instance and period, so it
    /// appears with one `period_start` only, and the pair is unique exactly when the id is: a
    /// metering step that stored an event twice still fails. But the index is now in time order.
    /// A random UUID key put every event of an acknowledged batch on its own leaf page of the
    /// index: deleting a batch of 500 rewrote some 400 pages (read, written to the WAL, copied
    /// back at the checkpoint), three quarters of a drain's I/O. In period order a batch's entries
    /// share a few pages, as new periods' do when they are stored. The index also gives the oldest
    /// pending period (its first entry), so v5's `events_period_start` goes. Row ids and the
    /// AUTOINCREMENT sequence are kept; the indexes and triggers of v5 are made again.
    static let eventIDsByPeriodSchema = """
        CREATE TABLE events_v6 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            instance_id TEXT NOT NULL,
            period_start INTEGER NOT NULL,
            period_end INTEGER NOT NULL,
            payload BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL DEFAULT 0,
            last_error TEXT,
            CHECK (period_end > period_start),
            UNIQUE (period_start, event_id)
        );
        INSERT INTO events_v6
            (id, event_id, event_type, instance_id, period_start, period_end, payload, created_at, attempts,
             next_attempt_at, last_error)
        SELECT id, event_id, event_type, instance_id, period_start, period_end, payload, created_at, attempts,
               next_attempt_at, last_error
        FROM events ORDER BY id;
        INSERT INTO sqlite_sequence (name, seq)
            SELECT 'events_v6', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events_v6');
        UPDATE sqlite_sequence
            SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))
            WHERE name = 'events_v6';
        DROP TABLE events;
        ALTER TABLE events_v6 RENAME TO events;
        CREATE INDEX events_due ON events (next_attempt_at, id);

        """ + eventsTriggersV5

    /// Whom each event is billed to (v7): `user_id` and `org_id` beside the payload of pending
    /// events and dead letters, so that a sink's subject or key (`sink.nats.subject`,
    /// `sink.subject`) is read from the row instead of decoding every payload it sends; decoding
    /// was a fifth of a NATS drain's CPU. Rows stored before are filled from their payloads by
    /// SQLite's JSON functions: a string value is kept, anything else (absent, null, another type,
    /// a payload that is not JSON) leaves the column NULL, as a decoder would have found nothing.
    static let eventOwnersSchema = """
        ALTER TABLE events ADD COLUMN user_id TEXT;
        ALTER TABLE events ADD COLUMN org_id TEXT;
        ALTER TABLE dead_letters ADD COLUMN user_id TEXT;
        ALTER TABLE dead_letters ADD COLUMN org_id TEXT;
        """ + ["events", "dead_letters"].map { table in
            """
            UPDATE \(table) SET
                user_id = CASE WHEN json_type(CAST(payload AS TEXT), '$.user_id') = 'text'
                    THEN json_extract(CAST(payload AS TEXT), '$.user_id') END,
                org_id = CASE WHEN json_type(CAST(payload AS TEXT), '$.org_id') = 'text'
                    THEN json_extract(CAST(payload AS TEXT), '$.org_id') END
            WHERE json_valid(CAST(payload AS TEXT));

            """
        }.joined()

    /// The head of each instance's hash chain (v9, UsageEvent 1.1): the seq and hash of the last
    /// event the agent made for it, written in the transaction that stores that event. A row
    /// outlives the instance's checkpoint, so an instance that goes and comes back continues its
    /// chain instead of starting a second one at seq 1.
    ///
    /// The signed commitments over those events (UsageEvent 1.1): `commitment_leaves` holds the
    /// events stored since the last commitment (each commit adds its own), `commitment_head` the
    /// last commitment's seq, hash and time. The commit that stores a commitment empties the leaves
    /// and moves the head in the same transaction, so every chained event is covered by exactly one
    /// commitment whatever crashes.
    static let eventChainsSchema = """
        CREATE TABLE event_chains (
            instance_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL CHECK (seq > 0),
            hash TEXT NOT NULL
        );
        CREATE TABLE commitment_leaves (
            instance_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL,
            period_start INTEGER NOT NULL,
            period_end INTEGER NOT NULL,
            PRIMARY KEY (instance_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE commitment_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL CHECK (seq > 0),
            hash TEXT NOT NULL,
            made_at INTEGER NOT NULL
        );
        """

    /// Attempts apart from events (v8): how often each pending event was offered lives in
    /// `event_attempts`, a row only for an event offered at least once, instead of a column of
    /// `events`. A lease counts the attempts of the batch it takes; as a column, that rewrote every
    /// page of `events` the batch sits on (each row carries its payload, about seven rows to a
    /// page) into the WAL, and at the checkpoint into the file: half the writes of a drain, and a
    /// tenth of its rate to NATS. Now a lease writes a few narrow pages, and only acknowledging
    /// rewrites the events' pages, once, as it removes them.
    ///
    /// Deleting an event deletes its attempts (a trigger, whatever deletes it); `attempted_events`
    /// in `outbox_totals` counts the rows of `event_attempts`, which is what it counted before
    /// (events with `attempts > 0`). A row of `event_attempts` goes only with its event, so the
    /// event's trigger takes it off the count: one trigger per acknowledged event instead of a
    /// second one on `event_attempts` (a tenth of an acknowledgement's cost).
    static let eventAttemptsSchema = """
        CREATE TABLE event_attempts (
            id INTEGER PRIMARY KEY,
            attempts INTEGER NOT NULL CHECK (attempts > 0)
        );
        INSERT INTO event_attempts (id, attempts) SELECT id, attempts FROM events WHERE attempts > 0;
        DROP TRIGGER events_counted_in;
        DROP TRIGGER events_counted_out;
        DROP TRIGGER events_recounted;
        ALTER TABLE events DROP COLUMN attempts;
        CREATE TRIGGER events_counted_in AFTER INSERT ON events BEGIN
            UPDATE outbox_totals SET pending_events = pending_events + 1,
                pending_bytes = pending_bytes + length(NEW.payload)
            WHERE id = 1;
        END;
        CREATE TRIGGER events_counted_out AFTER DELETE ON events BEGIN
            UPDATE outbox_totals SET pending_events = pending_events - 1,
                pending_bytes = pending_bytes - length(OLD.payload),
                attempted_events = attempted_events - EXISTS (SELECT 1 FROM event_attempts WHERE id = OLD.id)
            WHERE id = 1;
            DELETE FROM event_attempts WHERE id = OLD.id;
        END;
        CREATE TRIGGER events_recounted AFTER UPDATE OF payload ON events
        WHEN length(OLD.payload) != length(NEW.payload) BEGIN
            UPDATE outbox_totals SET pending_bytes = pending_bytes - length(OLD.payload) + length(NEW.payload)
            WHERE id = 1;
        END;
        CREATE TRIGGER event_attempts_counted_in AFTER INSERT ON event_attempts BEGIN
            UPDATE outbox_totals SET attempted_events = attempted_events + 1 WHERE id = 1;
        END;
        """

    /// Outbox bookkeeping in constant time (v5). The sampler reads the outbox's figures every
    /// sample and the shipper asks what falls due next every round; with 300,000 events pending,
    /// a COUNT or a scan ordered by row id would cost more than the rest of the sample together.
    ///
    /// - `outbox_totals`, one row, is kept by triggers on `events` and `dead_letters`, so it is
    ///   right after every write whatever wrote it (commit, lease, merge, replay, dead-lettering,
    ///   the CLI) and inside the same transaction. `length()` of a blob reads its size, not its bytes.
    /// - `events_due (next_attempt_at, id)`: leasing walks it in due order and stops at the batch;
    ///   the next due time is its first entry.
    /// - `events_period_start`: the oldest pending period is its first entry (v6 replaces it with
    ///   the unique index on `(period_start, event_id)`).
    static let outboxTotalsSchema = """
        CREATE INDEX events_due ON events (next_attempt_at, id);
        CREATE INDEX events_period_start ON events (period_start);
        """ + outboxTotalsTable + eventsTriggersV5 + deadLetterTriggers

    static let outboxTotalsTable = """
        CREATE TABLE outbox_totals (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pending_events INTEGER NOT NULL,
            pending_bytes INTEGER NOT NULL,
            attempted_events INTEGER NOT NULL,
            dead_letters INTEGER NOT NULL,
            dead_letter_bytes INTEGER NOT NULL
        );
        INSERT INTO outbox_totals VALUES (
            1,
            (SELECT COUNT(*) FROM events),
            (SELECT COALESCE(SUM(length(payload)), 0) FROM events),
            (SELECT COUNT(*) FROM events WHERE attempts > 0),
            (SELECT COUNT(*) FROM dead_letters),
            (SELECT COALESCE(SUM(length(payload)), 0) FROM dead_letters)
        );

        """

    /// The triggers that kept `outbox_totals` right for `events` from v5 (made again by v6's
    /// rebuild) until v8 replaced them.
    static let eventsTriggersV5 = """
        CREATE TRIGGER events_counted_in AFTER INSERT ON events BEGIN
            UPDATE outbox_totals SET pending_events = pending_events + 1,
                pending_bytes = pending_bytes + length(NEW.payload),
                attempted_events = attempted_events + (NEW.attempts > 0)
            WHERE id = 1;
        END;
        CREATE TRIGGER events_counted_out AFTER DELETE ON events BEGIN
            UPDATE outbox_totals SET pending_events = pending_events - 1,
                pending_bytes = pending_bytes - length(OLD.payload),
                attempted_events = attempted_events - (OLD.attempts > 0)
            WHERE id = 1;
        END;
        CREATE TRIGGER events_recounted AFTER UPDATE OF payload, attempts ON events
        WHEN length(OLD.payload) != length(NEW.payload) OR (OLD.attempts > 0) != (NEW.attempts > 0) BEGIN
            UPDATE outbox_totals SET pending_bytes = pending_bytes - length(OLD.payload) + length(NEW.payload),
                attempted_events = attempted_events - (OLD.attempts > 0) + (NEW.attempts > 0)
            WHERE id = 1;
        END;

        """

    static let deadLetterTriggers = """
        CREATE TRIGGER dead_letters_counted_in AFTER INSERT ON dead_letters BEGIN
            UPDATE outbox_totals SET dead_letters = dead_letters + 1,
                dead_letter_bytes = dead_letter_bytes + length(NEW.payload)
            WHERE id = 1;
        END;
        CREATE TRIGGER dead_letters_counted_out AFTER DELETE ON dead_letters BEGIN
            UPDATE outbox_totals SET dead_letters = dead_letters - 1,
                dead_letter_bytes = dead_letter_bytes - length(OLD.payload)
            WHERE id = 1;
        END;
        CREATE TRIGGER dead_letters_recounted AFTER UPDATE OF payload ON dead_letters
        WHEN length(OLD.payload) != length(NEW.payload) BEGIN
            UPDATE outbox_totals SET dead_letter_bytes = dead_letter_bytes - length(OLD.payload) + length(NEW.payload)
            WHERE id = 1;
        END;
        """

    // MARK: Metering

    /// Writes one metering step — checkpoints, events, gaps, baselines — in one transaction. With
    /// `readingStats`, returns the outbox's figures as that transaction left them (read inside it,
    /// so they count exactly what was committed); they take a scan of the outbox, which the sampler
    /// does once per sample and a bulk writer should not do per commit.
    ///
    /// With `maxBytes`, a step that brings events is refused with `OutboxError.full` when the
    /// database is over the bound even after pruning audit records and merging old pending events
    /// (`makeRoom`); the caller's
    /// checkpoint then does not advance, so the usage is billed later rather than lost. Subscribers
    /// of `commits` get the stored events of their type once the transaction has committed.
    @discardableResult
    public func commit(
        _ commit: MeteringCommit, now: Int64 = Int64(Date().timeIntervalSince1970), maxBytes: Int? = nil,
        readingStats: Bool = false
    ) throws(OutboxError) -> OutboxStats? {
        guard !commit.isEmpty else { return readingStats ? try stats() : nil }
        if let maxBytes, !commit.events.isEmpty { try makeRoom(maxBytes: maxBytes, now: now) }
        let feed = commits
        let followedTypes = feed.eventTypes
        let followed = commit.events.filter { followedTypes.contains($0.eventType) }
        let stores = !commit.events.isEmpty && feed.watchesStores
        return try write("commit metering step") { db in
            if !followed.isEmpty || stores {
                db.afterNextTransaction(onCommit: { _ in
                    if !followed.isEmpty { feed.publish(followed) }
                    if stores { feed.eventsStored() }
                })
            }
            // Cached statements: a host with 1,000 instances writes 1,000 checkpoints per sample.
            if !commit.events.isEmpty {
                let insert = try db.cachedStatement(
                    sql: """
                        INSERT INTO events
                            (event_id, event_type, instance_id, period_start, period_end, payload, created_at, user_id, org_id)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """)
                for event in commit.events {
                    try insert.execute(
                        arguments: [event.eventID, event.eventType, event.instanceID, event.periodStart, event.periodEnd,
                                    event.payload, now, event.userID, event.orgID])
                }
            }
            for gap in commit.gaps {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO metering_gaps (instance_id, reason, from_time, to_time, detail, recorded_at)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """
                ).execute(arguments: [gap.instanceID, gap.reason, gap.from, gap.to, gap.detail, now])
            }
            for baseline in commit.baselines {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO metering_baselines (instance_id, boot_id, wall_ns, counters, recorded_at)
                        VALUES (?, ?, ?, ?, ?)
                        """
                ).execute(
                    arguments: [baseline.instanceID, baseline.bootID, baseline.wallNanos,
                                String(decoding: baseline.counters, as: UTF8.self), now])
            }
            if !commit.checkpoints.isEmpty {
                let upsert = try db.cachedStatement(
                    sql: """
                        INSERT INTO checkpoints (instance_id, format, state, updated_at) VALUES (?, ?, ?, ?)
                        ON CONFLICT (instance_id) DO UPDATE SET
                            format = excluded.format, state = excluded.state, updated_at = excluded.updated_at
                        """)
                for checkpoint in commit.checkpoints {
                    try upsert.execute(arguments: [checkpoint.instanceID, checkpoint.format, checkpoint.state, now])
                }
            }
            if !commit.chainHeads.isEmpty {
                let upsert = try db.cachedStatement(
                    sql: """
                        INSERT INTO event_chains (instance_id, seq, hash) VALUES (?, ?, ?)
                        ON CONFLICT (instance_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash
                        """)
                for (instanceID, head) in commit.chainHeads {
                    try upsert.execute(arguments: [instanceID, head.seq, head.hash])
                }
            }
            if let head = commit.commitmentHead {
                // The commitment stored with this step covers every leaf so far, this step's too.
                try db.cachedStatement(sql: "DELETE FROM commitment_leaves").execute()
                try db.cachedStatement(
                    sql: """
                        INSERT INTO commitment_head (id, seq, hash, made_at) VALUES (1, ?, ?, ?)
                        ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, made_at = excluded.made_at
                        """
                ).execute(arguments: [head.seq, head.hash, head.madeAt])
            } else if !commit.commitmentLeaves.isEmpty {
                let insert = try db.cachedStatement(
                    sql: """
                        INSERT INTO commitment_leaves (instance_id, seq, hash, period_start, period_end)
                        VALUES (?, ?, ?, ?, ?)
                        """)
                for leaf in commit.commitmentLeaves {
                    try insert.execute(arguments: [leaf.instanceID, leaf.seq, leaf.hash, leaf.period.start, leaf.period.end])
                }
            }
            for instanceID in commit.removedCheckpoints {
                try db.cachedStatement(sql: "DELETE FROM checkpoints WHERE instance_id = ?").execute(arguments: [instanceID])
            }
            if let states = commit.thresholdStates {
                try db.execute(sql: "DELETE FROM threshold_state")
                let insert = try db.cachedStatement(
                    sql: "INSERT INTO threshold_state (rule, instance_id, state) VALUES (?, ?, ?)")
                for record in states {
                    try insert.execute(arguments: [record.rule, record.instanceID, String(decoding: record.state, as: UTF8.self)])
                }
            }
            return readingStats ? try Self.stats(db) : nil
        }
    }

    /// Every stored checkpoint, by instance.
    public func checkpoints() throws(OutboxError) -> [String: CheckpointRecord] {
        try read("read checkpoints") { db in
            var result: [String: CheckpointRecord] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT instance_id, format, state FROM checkpoints") {
                let record = CheckpointRecord(instanceID: row["instance_id"], format: row["format"], state: row["state"])
                result[record.instanceID] = record
            }
            return result
        }
    }

    /// The head of every instance's hash chain (UsageEvent 1.1), by instance id.
    public func chainHeads() throws(OutboxError) -> [String: ChainHead] {
        try read("read chain heads") { db in
            var heads: [String: ChainHead] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT instance_id, seq, hash FROM event_chains") {
                heads[row[0]] = ChainHead(seq: row[1], hash: row[2])
            }
            return heads
        }
    }

    /// The last commitment's head and the leaves stored since (UsageEvent 1.1).
    public func commitmentState() throws(OutboxError) -> (head: CommitmentHead?, leaves: [CommitmentLeaf]) {
        try read("read commitment state") { db in
            let head = try Row.fetchOne(db, sql: "SELECT seq, hash, made_at FROM commitment_head WHERE id = 1").map {
                CommitmentHead(seq: $0[0], hash: $0[1], madeAt: $0[2])
            }
            let leaves = try Row.fetchAll(
                db, sql: "SELECT instance_id, seq, hash, period_start, period_end FROM commitment_leaves"
            ).map { row in
                CommitmentLeaf(instanceID: row[0], seq: row[1], hash: row[2], period: Period(start: row[3], end: row[4]))
            }
            return (head, leaves)
        }
    }

    /// Events in the order they were stored, optionally of one instance.
    public func events(instanceID: String? = nil) throws(OutboxError) -> [OutboxEvent] {
        try read("read events") { db in
            let rows: [Row]
            if let instanceID {
                rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM events WHERE instance_id = ? ORDER BY id", arguments: [instanceID])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM events ORDER BY id")
            }
            return rows.map(OutboxEvent.init(row:))
        }
    }

    /// Recorded gaps in the order they were stored.
    public func gaps() throws(OutboxError) -> [GapRecord] {
        try read("read gaps") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM metering_gaps ORDER BY id").map { row in
                GapRecord(
                    instanceID: row["instance_id"], reason: row["reason"], from: row["from_time"], to: row["to_time"],
                    detail: row["detail"])
            }
        }
    }

    /// Recorded baselines in the order they were stored.
    public func baselines() throws(OutboxError) -> [BaselineRecord] {
        try read("read baselines") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM metering_baselines ORDER BY id").map { row in
                BaselineRecord(
                    instanceID: row["instance_id"], bootID: row["boot_id"], wallNanos: row["wall_ns"],
                    counters: Data((row["counters"] as String).utf8))
            }
        }
    }

    // MARK: Plumbing

    /// One write transaction. `durability` says whether its commit is fsynced (see
    /// `WriteDurability`): the connection runs with `synchronous = FULL`, and a relaxed write
    /// switches to `NORMAL` for its one transaction (SQLite allows the switch only between
    /// transactions, so it is made on the writer connection before `BEGIN`).
    func write<T>(
        _ operation: String, durability: WriteDurability = .durable, _ body: (Database) throws -> T
    ) throws(OutboxError) -> T {
        do {
            return try writer.writeWithoutTransaction { db in
                let relaxed = try !durability.isDurable(db)
                if relaxed { try db.cachedStatement(sql: "PRAGMA synchronous = NORMAL").execute() }
                defer { if relaxed { try? db.cachedStatement(sql: "PRAGMA synchronous = FULL").execute() } }
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        } catch {
            throw .failed(path: path, operation: operation, reason: Self.reason(error))
        }
    }

    func read<T>(_ operation: String, _ body: (Database) throws -> T) throws(OutboxError) -> T {
        do {
            return try writer.read(body)
        } catch {
            throw .failed(path: path, operation: operation, reason: Self.reason(error))
        }
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            return "\(error.resultCode): \(error.message ?? "no message")"
        }
        return String(describing: error)
    }
}
