import Foundation
import Outbox
import Testing

/// Another process holding the database's write lock: a write waits for the busy timeout, then
/// fails with an error that names the file and says it is locked; nothing is half-written.
@Suite struct AgentDatabaseLockTests {
    @Test func aWriteBlockedByAnotherProcessFailsNamingTheFile() throws {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("agent.sqlite").path
            let database = try AgentDatabase.open(path: path, busyTimeoutSeconds: 0.3)
            // A real second process takes the write lock and holds it until told to let go.
            let holder = Process()
            holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            holder.arguments = [
                "python3", "-c",
                """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1], isolation_level=None)
                db.execute("BEGIN IMMEDIATE")
                print("locked", flush=True)
                sys.stdin.readline()
                db.execute("ROLLBACK")
                """,
                path,
            ]
            let input = Pipe()
            let output = Pipe()
            holder.standardInput = input
            holder.standardOutput = output
            try holder.run()
            func release() throws {
                guard holder.isRunning else { return }
                try input.fileHandleForWriting.write(contentsOf: Data("\n".utf8))
                holder.waitUntilExit()
            }
            defer { try? release() }
            let ready = output.fileHandleForReading.readData(ofLength: 6)
            #expect(String(decoding: ready, as: UTF8.self) == "locked")

            let started = Date()
            do {
                try database.commit(MeteringCommit(gaps: [GapRecord(instanceID: "vm-1", reason: "reboot", from: 1, to: 2, detail: "")]))
                Issue.record("the write should have failed while another process holds the lock")
            } catch {
                let message = String(describing: error)
                #expect(message.contains(path), "\(message)")
                #expect(message.lowercased().contains("locked"), "\(message)")
            }
            #expect(Date().timeIntervalSince(started) >= 0.25, "it should wait for the busy timeout first")

            try release()
            try database.commit(MeteringCommit(gaps: [GapRecord(instanceID: "vm-1", reason: "reboot", from: 1, to: 2, detail: "")]))
            #expect(try database.gaps().count == 1)
        }
    }
}
