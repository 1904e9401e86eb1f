import Foundation
import Outbox
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The database holds usage and checkpoints: a new one, and the WAL and shared-memory files SQLite
/// makes beside it, are readable and writable by their owner only, whatever the process's umask.
@Suite struct DatabaseFileModeTests {
    @Test func aNewDatabaseAndItsWALAreTheOwnersAlone() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("hostmeter.sqlite").path
            let database = try AgentDatabase.open(path: path)
            try database.commit(MeteringCommit(events: [AgentDatabaseTests.event("e-1")]))
            for file in [path, path + "-wal", path + "-shm"] {
                #expect(try Self.mode(file) == 0o600, "\(file)")
            }
        }
    }

    @Test func anExistingDatabaseKeepsItsMode() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("hostmeter.sqlite").path
            _ = try AgentDatabase.open(path: path)
            #expect(chmod(path, 0o640) == 0)
            _ = try AgentDatabase.open(path: path)
            #expect(try Self.mode(path) == 0o640)
        }
    }

    static func mode(_ path: String) throws -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .ENOENT) }
        return info.st_mode & 0o7777
    }
}
