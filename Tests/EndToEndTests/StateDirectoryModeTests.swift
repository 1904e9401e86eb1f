import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The state directory holds usage, checkpoints and the API's instance registrations: outside
/// systemd (whose unit sets `UMask=0077`) nobody else may read it, whatever the umask the agent was
/// started with. The real binary under `umask 000`.
@Suite(.serialized, .timeLimit(.minutes(2))) struct StateDirectoryModeTests {
    @Test func theStateDirectoryAndDatabaseAreTheOwnersAloneWhateverTheUmask() async throws {
        let scratch = try AgentScratch()
        defer { scratch.remove() }
        // Two missing parents: created too, searchable (0755) but not writable by others.
        let parent = scratch.directory.appendingPathComponent("var/lib")
        let state = parent.appendingPathComponent("hostmeter")
        try scratch.writeConfig(stateDirectory: state, "log:\n  level: debug\n")
        let agent = try AgentChild(scratch, shell: "umask 000")
        defer { agent.kill() }
        // A period closed and was shipped to the file sink: the database has its WAL and index by now.
        #expect(
            await agent.waitForStderr(within: 30) { $0.contains("msg=ready") && $0.contains("msg=\"period closed\"") },
            "stderr:\n\(agent.stderr)")

        #expect(try Self.mode(state.path) == 0o700)
        for name in ["hostmeter.sqlite", "hostmeter.sqlite-wal", "hostmeter.sqlite-shm", "hostmeter.lock"] {
            let path = state.appendingPathComponent(name).path
            #expect(try Self.mode(path) == 0o600, "\(name)")
        }
        for directory in [parent, parent.deletingLastPathComponent()] {
            #expect(try Self.mode(directory.path) == 0o755, "\(directory.path)")
        }

        kill(agent.pid, SIGTERM)
        #expect(await agent.waitForExit(within: 30) == .exited(0), "stderr:\n\(agent.stderr)")
    }

    @Test func anExistingStateDirectoryKeepsTheModeItWasGiven() async throws {
        // systemd creates it (StateDirectoryMode=0750); the agent leaves an existing one alone.
        let scratch = try AgentScratch()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(at: scratch.stateDirectory, withIntermediateDirectories: false)
        #expect(chmod(scratch.stateDirectory.path, 0o750) == 0)
        try scratch.writeConfig()
        let agent = try AgentChild(scratch, shell: "umask 000")
        defer { agent.kill() }
        #expect(await agent.waitForStderr(within: 30) { $0.contains("msg=ready") }, "stderr:\n\(agent.stderr)")
        #expect(try Self.mode(scratch.stateDirectory.path) == 0o750)
        #expect(try Self.mode(scratch.stateDirectory.appendingPathComponent("hostmeter.sqlite").path) == 0o600)
        kill(agent.pid, SIGTERM)
        #expect(await agent.waitForExit(within: 30) == .exited(0), "stderr:\n\(agent.stderr)")
    }

    /// The permission bits of `path`.
    static func mode(_ path: String) throws -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .ENOENT) }
        return info.st_mode & 0o7777
    }
}
