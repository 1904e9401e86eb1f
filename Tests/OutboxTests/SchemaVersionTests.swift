import Foundation
import GRDB
import Outbox
import Testing

/// A database written by a newer hostmeter (a migration this build does not know, or a schema
/// version above its own) is refused with an error naming the file and both versions: this build
/// would misread or damage what it does not know. Real SQLite files.
@Suite struct SchemaVersionTests {
    /// The number of migrations this build applies to a new database: its schema version.
    static func ownVersion(_ path: String) throws -> Int {
        let database = try AgentDatabase.open(path: path)
        defer { try? database.writer.close() }
        return try database.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM grdb_migrations") ?? 0 }
    }

    @Test func aMigrationThisBuildDoesNotKnowIsRefused() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("hostmeter.sqlite").path
            let ours = try Self.ownVersion(path)
            #expect(ours >= 4)
            // A newer hostmeter migrated the file one step further.
            let newer = try DatabaseQueue(path: path)
            try newer.write { db in
                try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99 from a newer hostmeter')")
            }
            try newer.close()

            let error = #expect(throws: OutboxError.self) { try AgentDatabase.open(path: path) }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains(path), "\(text)")
            #expect(text.contains("schema version \(ours + 1)"), "\(text)")
            #expect(text.contains("this build's is \(ours)"), "\(text)")
            #expect(text.contains("v99 from a newer hostmeter"), "\(text)")
            // Refused before touching it: the newer migration is still there and nothing was added.
            let identifiers = try DatabaseQueue(path: path).read { db in
                try String.fetchSet(db, sql: "SELECT identifier FROM grdb_migrations")
            }
            #expect(identifiers.count == ours + 1)
        }
    }

    @Test func aStoredSchemaVersionAboveOursIsRefused() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("hostmeter.sqlite").path
            let ours = try Self.ownVersion(path)
            let newer = try DatabaseQueue(path: path)
            try newer.write { db in try db.execute(sql: "PRAGMA user_version = 1000") }
            try newer.close()

            let error = #expect(throws: OutboxError.self) { try AgentDatabase.open(path: path) }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains(path), "\(text)")
            #expect(text.contains("schema version 1000"), "\(text)")
            #expect(text.contains("this build's is \(ours)"), "\(text)")
        }
    }

    @Test func theSchemaVersionIsStoredAndAnOlderDatabaseIsMigrated() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("hostmeter.sqlite").path
            let ours = try Self.ownVersion(path)
            let stored = try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") }
            #expect(stored == ours)
            // An older build's file: fewer migrations, an older version. Opened and migrated.
            let older = try DatabaseQueue(path: path)
            try older.write { db in
                try db.execute(sql: "DROP TABLE instances")
                try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier LIKE 'v4 %'")
                try db.execute(sql: "PRAGMA user_version = 3")
            }
            try older.close()
            #expect(try Self.ownVersion(path) == ours)
            let version = try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") }
            #expect(version == ours)
        }
    }
}
