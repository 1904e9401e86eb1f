import Foundation
import GRDB
import Outbox
import Testing

/// The agent's SQLite database: migration, the one-transaction commit (billing invariant 4), WAL
/// durability across reopening, and errors that name the file.
@Suite struct AgentDatabaseTests {
    // MARK: Fixtures

    static func event(_ id: String, instance: String = "vm-1", start: Int64 = 0, end: Int64 = 30) -> OutboxEvent {
        OutboxEvent(
            eventID: id, eventType: "resource_usage", instanceID: instance, periodStart: start, periodEnd: end,
            payload: Data(#"{"event_id":"\#(id)"}"#.utf8))
    }

    static func checkpoint(_ instance: String = "vm-1", state: String) -> CheckpointRecord {
        CheckpointRecord(instanceID: instance, format: 1, state: Data(state.utf8))
    }

    static let gap = GapRecord(instanceID: "vm-1", reason: "reboot", from: 60, to: 90, detail: "boot a → b")
    static let baseline = BaselineRecord(
        instanceID: "vm-1", bootID: "b", wallNanos: 90_000_000_000, counters: Data(#"{"cpu_ns:cpu":7}"#.utf8))

    /// A fresh directory under the system's temporary directory, removed when `body` returns.
    static func withTemporaryDirectory<T>(_ body: (URL) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hostmeter-outbox-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
            try? FileManager.default.removeItem(at: directory)
        }
        return try body(directory)
    }

    /// Everything a database holds, for comparing before and after.
    struct Contents: Equatable {
        var events: [OutboxEvent]
        var checkpoints: [String: CheckpointRecord]
        var gaps: [GapRecord]
        var baselines: [BaselineRecord]

        init(_ database: AgentDatabase) throws {
            events = try database.events()
            checkpoints = try database.checkpoints()
            gaps = try database.gaps()
            baselines = try database.baselines()
        }
    }

    // MARK: Migration

    @Test func migrationCreatesTheTables() throws {
        let database = try AgentDatabase.inMemory()
        let tables = try database.writer.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        }
        for table in ["checkpoints", "events", "metering_baselines", "metering_gaps"] {
            #expect(tables.contains(table), "missing table \(table) in \(tables)")
        }
        let contents = try Contents(database)
        #expect(contents.events.isEmpty && contents.checkpoints.isEmpty)
        #expect(contents.gaps.isEmpty && contents.baselines.isEmpty)
    }

    @Test func migratingAnExistingFileAgainIsANoOp() throws {
        try Self.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("agent.sqlite").path
            try AgentDatabase.open(path: path).commit(MeteringCommit(events: [Self.event("e1")]), now: 1)
            let reopened = try AgentDatabase.open(path: path)
            #expect(try reopened.events() == [Self.event("e1")])
        }
    }

    /// The writer connection syncs fully unless a write relaxes it, and zeroes deleted records only
    /// on pages it writes anyway (`secure_delete = FAST`, 2): not Debian's build default (1),
    /// which writes every page a delete frees again.
    @Test func theWriterSyncsFullyAndDeletesWithoutExtraWrites() throws {
        try Self.withTemporaryDirectory { directory in
            let database = try AgentDatabase.open(path: directory.appendingPathComponent("agent.sqlite").path)
            func pragmas() throws -> [Int?] {
                let row = try database.writer.writeWithoutTransaction { db in
                    try Row.fetchOne(
                        db,
                        sql: "SELECT (SELECT synchronous FROM pragma_synchronous), (SELECT secure_delete FROM pragma_secure_delete)")
                }
                return [row?[0], row?[1]]
            }
            // From the first write on: a fresh pool's writer was NORMAL until a relaxed write.
            #expect(try pragmas() == [2, 2])
            try database.acknowledge([1])
            #expect(try pragmas() == [2, 2])
        }
    }

    // MARK: Commit

    @Test func commitStoresEventsGapsBaselinesAndCheckpoint() throws {
        let database = try AgentDatabase.inMemory()
        let commit = MeteringCommit(
            checkpoints: [Self.checkpoint(state: "after e2")],
            events: [Self.event("e1"), Self.event("e2", start: 30, end: 60)],
            gaps: [Self.gap], baselines: [Self.baseline])
        try database.commit(commit, now: 1_763_726_431)

        #expect(try database.events() == commit.events)
        #expect(try database.events(instanceID: "vm-1") == commit.events)
        #expect(try database.events(instanceID: "vm-2").isEmpty)
        #expect(try database.checkpoints() == ["vm-1": Self.checkpoint(state: "after e2")])
        #expect(try database.gaps() == [Self.gap])
        #expect(try database.baselines() == [Self.baseline])
        let stamps = try database.writer.read { db in
            try Int64.fetchAll(
                db,
                sql: """
                    SELECT created_at FROM events UNION ALL SELECT updated_at FROM checkpoints
                    UNION ALL SELECT recorded_at FROM metering_gaps UNION ALL SELECT recorded_at FROM metering_baselines
                    """)
        }
        #expect(stamps == Array(repeating: 1_763_726_431, count: 5))
    }

    @Test func commitUpsertsTheCheckpointAndAppendsTheRest() throws {
        let database = try AgentDatabase.inMemory()
        try database.commit(
            MeteringCommit(
                checkpoints: [Self.checkpoint(state: "one"), Self.checkpoint("vm-2", state: "other")],
                events: [Self.event("e1")]),
            now: 1)
        try database.commit(
            MeteringCommit(
                checkpoints: [CheckpointRecord(instanceID: "vm-1", format: 2, state: Data("two".utf8))],
                events: [Self.event("e2", start: 30, end: 60)]),
            now: 2)

        #expect(
            try database.checkpoints() == [
                "vm-1": CheckpointRecord(instanceID: "vm-1", format: 2, state: Data("two".utf8)),
                "vm-2": Self.checkpoint("vm-2", state: "other"),
            ])
        #expect(try database.events().map(\.eventID) == ["e1", "e2"])
        let updated = try database.writer.read { db in
            try Int64.fetchOne(db, sql: "SELECT updated_at FROM checkpoints WHERE instance_id = 'vm-1'")
        }
        #expect(updated == 2)
    }

    @Test func anEmptyCommitWritesNothing() throws {
        let database = try AgentDatabase.inMemory()
        try database.commit(MeteringCommit())
        #expect(try Contents(database) == Contents(database))
        #expect(try database.events().isEmpty && database.checkpoints().isEmpty)
    }

    /// Commits whose last-but-one write violates a constraint SQLite holds: by then the first event
    /// (and, for a bad gap, every event) has been inserted and must be rolled back with the rest.
    /// An event id names its period (a name-based UUID of type, host, instance and period), so
    /// the same event stored twice has the same id and the same period.
    static let failingCommits: [(String, MeteringCommit)] = [
        (
            "duplicate event within the commit",
            MeteringCommit(
                checkpoints: [checkpoint(state: "new")], events: [event("e2", start: 30, end: 60), event("e2", start: 30, end: 60)],
                gaps: [gap], baselines: [baseline])
        ),
        (
            "event already stored",
            MeteringCommit(
                checkpoints: [checkpoint(state: "new")], events: [event("e2", start: 30, end: 60), event("e1")],
                gaps: [gap], baselines: [baseline])
        ),
        (
            "period_end equal to period_start",
            MeteringCommit(
                checkpoints: [checkpoint(state: "new")], events: [event("e2", start: 30, end: 60), event("e3", start: 60, end: 60)],
                gaps: [gap], baselines: [baseline])
        ),
        (
            "period_end before period_start",
            MeteringCommit(
                checkpoints: [checkpoint(state: "new")], events: [event("e2", start: 30, end: 60), event("e3", start: 90, end: 60)],
                gaps: [gap], baselines: [baseline])
        ),
        (
            "gap that ends before it starts, after the events",
            MeteringCommit(
                checkpoints: [checkpoint(state: "new")], events: [event("e2", start: 30, end: 60), event("e3", start: 60, end: 90)],
                gaps: [GapRecord(instanceID: "vm-1", reason: "reboot", from: 90, to: 60, detail: "")],
                baselines: [baseline])
        ),
    ]

    @Test(arguments: failingCommits)
    func aFailingCommitStoresNothingOfItself(why: String, commit: MeteringCommit) throws {
        let database = try AgentDatabase.inMemory()
        try database.commit(MeteringCommit(checkpoints: [Self.checkpoint(state: "old")], events: [Self.event("e1")]), now: 1)
        let before = try Contents(database)

        let error = #expect(throws: OutboxError.self, "\(why) was committed") { try database.commit(commit, now: 2) }
        guard case .failed(let path, let operation, _) = error else {
            Issue.record("expected OutboxError.failed, got \(String(describing: error))")
            return
        }
        #expect(path == ":memory:")
        #expect(operation == "commit metering step")

        let after = try Contents(database)
        #expect(after == before, "\(why): the failed commit left something behind")
        #expect(after.checkpoints["vm-1"]?.state == Data("old".utf8), "the checkpoint advanced without its events")
        #expect(after.events.map(\.eventID) == ["e1"])
        #expect(after.gaps.isEmpty && after.baselines.isEmpty)
    }

    /// The checkpoint is the last write of a commit: when it fails, every event, gap and baseline
    /// already inserted must go too. SQLite gives no way to make an upsert fail, so a trigger does.
    @Test func aFailingCheckpointTakesTheEventsWithIt() throws {
        let database = try AgentDatabase.inMemory()
        try database.commit(MeteringCommit(checkpoints: [Self.checkpoint(state: "old")], events: [Self.event("e1")]), now: 1)
        try database.writer.write { db in
            try db.execute(
                sql: """
                    CREATE TRIGGER refuse_poison_insert BEFORE INSERT ON checkpoints
                    WHEN NEW.state = CAST('poison' AS BLOB) BEGIN SELECT RAISE(ABORT, 'poisoned checkpoint'); END;
                    CREATE TRIGGER refuse_poison_update BEFORE UPDATE ON checkpoints
                    WHEN NEW.state = CAST('poison' AS BLOB) BEGIN SELECT RAISE(ABORT, 'poisoned checkpoint'); END;
                    """)
        }
        let before = try Contents(database)

        for instance in ["vm-1", "vm-2"] {  // an update of a stored checkpoint, and an insert of a new one
            let commit = MeteringCommit(
                checkpoints: [Self.checkpoint("vm-3", state: "fine"), Self.checkpoint(instance, state: "poison")],
                events: [Self.event("e2", start: 30, end: 60), Self.event("e3", start: 60, end: 90)],
                gaps: [Self.gap], baselines: [Self.baseline])
            let error = #expect(throws: OutboxError.self) { try database.commit(commit, now: 2) }
            #expect(error?.description.contains("poisoned checkpoint") == true, "\(String(describing: error))")
            #expect(try Contents(database) == before, "a failed checkpoint of \(instance) left its step behind")
        }
    }

    // MARK: Files

    @Test func reopeningAFileSeesEveryCommittedWrite() throws {
        try Self.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("agent.sqlite").path
            let commit = MeteringCommit(
                checkpoints: [Self.checkpoint(state: "s1")], events: [Self.event("e1"), Self.event("e2", start: 30, end: 60)],
                gaps: [Self.gap], baselines: [Self.baseline])
            let expected: Contents
            do {
                let database = try AgentDatabase.open(path: path)
                try database.commit(commit, now: 1)
                expected = try Contents(database)
                #expect(expected.events.count == 2)

                // WAL: the commit sits in the -wal file while the writer is open, and a second
                // connection (another process, the API) reads it from there.
                #expect(FileManager.default.fileExists(atPath: path + "-wal"))
                let mode = try database.writer.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
                #expect(mode == "wal")
                let concurrent = try AgentDatabase.open(path: path)
                #expect(try Contents(concurrent) == expected)
            }
            // Every connection closed; a new agent finds everything.
            let reopened = try AgentDatabase.open(path: path)
            #expect(try Contents(reopened) == expected)
            try reopened.commit(MeteringCommit(checkpoints: [Self.checkpoint(state: "s2")], events: [Self.event("e3", start: 60, end: 90)]))
            #expect(try reopened.events().map(\.eventID) == ["e1", "e2", "e3"])
            #expect(try reopened.checkpoints()["vm-1"]?.state == Data("s2".utf8))
        }
    }

    @Test func openingInAMissingDirectoryNamesThePath() throws {
        try Self.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("no-such-directory/agent.sqlite").path
            try Self.expectCannotOpen(path)
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("no-such-directory").path))
        }
    }

    @Test func openingAFileThatIsNotADatabaseNamesThePath() throws {
        try Self.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("agent.sqlite").path
            let garbage = Data(String(repeating: "this is not an SQLite database\n", count: 200).utf8)
            try garbage.write(to: URL(fileURLWithPath: path))
            try Self.expectCannotOpen(path)
            // Refused, not repaired: the file is left as it was for someone to look at.
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == garbage)
        }
    }

    @Test func openingInAReadOnlyDirectoryNamesThePath() throws {
        try Self.withTemporaryDirectory { directory in
            let readOnly = directory.appendingPathComponent("read-only")
            try FileManager.default.createDirectory(at: readOnly, withIntermediateDirectories: false)
            try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: readOnly.path)
            // Root (CAP_DAC_OVERRIDE) writes into a 0555 directory anyway: then there is nothing to test.
            let probe = readOnly.appendingPathComponent("probe")
            if FileManager.default.createFile(atPath: probe.path, contents: Data()) {
                try? FileManager.default.removeItem(at: probe)
                try Test.cancel("a 0555 directory is writable for this user (root?): cannot test a read-only directory")
            }
            try Self.expectCannotOpen(readOnly.appendingPathComponent("agent.sqlite").path)
        }
    }

    /// `open(path:)` throws `.cannotOpen` for `path`, with a description that names it.
    static func expectCannotOpen(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let error = #expect(throws: OutboxError.self, sourceLocation: sourceLocation) {
            try AgentDatabase.open(path: path)
        }
        guard case .cannotOpen(let errorPath, let reason) = error else {
            Issue.record("expected OutboxError.cannotOpen, got \(String(describing: error))", sourceLocation: sourceLocation)
            return
        }
        #expect(errorPath == path, sourceLocation: sourceLocation)
        #expect(!reason.isEmpty, sourceLocation: sourceLocation)
        #expect(error?.description.contains(path) == true, "\(String(describing: error))", sourceLocation: sourceLocation)
    }
}
