import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real binary's identity key: made at the first start (mode 0600 under `umask 000`), the same
/// key after a restart, the same public key from `GET /identity` and `hostmeter identity`, and a key
/// file others may read stops the start with exit 2.
@Suite(.serialized, .timeLimit(.minutes(2))) struct IdentityTests {
    @Test func theKeyIsMadeOnceAndShownAlikeByTheAPIAndTheCommand() async throws {
        let scratch = try AgentScratch()
        defer { scratch.remove() }
        try scratch.writeConfig()
        let keyFile = scratch.stateDirectory.appendingPathComponent("identity.pem").path
        var keyIDs: [String] = []
        for start in 0..<2 {
            let agent = try AgentChild(scratch, shell: "umask 000")
            defer { agent.kill() }
            #expect(await agent.waitForStderr(within: 30) { $0.contains("msg=ready") }, "stderr:\n\(agent.stderr)")
            #expect(agent.stderr.contains("msg=\"made a new identity key\"") == (start == 0), "stderr:\n\(agent.stderr)")
            var info = stat()
            #expect(stat(keyFile, &info) == 0 && info.st_mode & 0o777 == 0o600)

            let answer = try LoopbackHTTP.get(port: try await agent.apiPort(), path: "/identity")
            #expect(answer.status == 200)
            let served = answer.json
            let shown = try jsonObject(try hostmeter("identity", "--config", scratch.configFile.path).stdout)
            #expect(shown["key_file"] as? String == keyFile)
            for field in ["algorithm", "host_id", "key_id", "public_key", "public_key_pem"] {
                #expect(served[field] as? String == shown[field] as? String, "\(field)")
            }
            let pem = try hostmeter("identity", "--config", scratch.configFile.path, "--pem")
            #expect(String(decoding: pem.stdout, as: UTF8.self) == served["public_key_pem"] as? String)
            keyIDs.append(try #require(served["key_id"] as? String))

            kill(agent.pid, SIGTERM)
            #expect(await agent.waitForExit(within: 30) == .exited(0), "stderr:\n\(agent.stderr)")
        }
        #expect(keyIDs.count == 2 && keyIDs[0] == keyIDs[1])

        // Others may read it now: the agent does not start, the command does not show it.
        #expect(chmod(keyFile, 0o644) == 0)
        let refused = try AgentChild(scratch)
        defer { refused.kill() }
        #expect(await refused.waitForExit(within: 30) == .exited(2), "stderr:\n\(refused.stderr)")
        #expect(refused.stderr.contains("identity.key_file") && refused.stderr.contains("mode 644"), "stderr:\n\(refused.stderr)")
        let command = try hostmeter("identity", "--config", scratch.configFile.path)
        #expect(command.status == 1 && command.stderr.contains("mode 644"), "\(command.stderr)")
    }
}
