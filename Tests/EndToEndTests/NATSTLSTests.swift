import Foundation
import Outbox
import TestSupport
import Testing

/// `hostmeter run` publishing over TLS to a nats-server that wants a token: with the CA of the
/// server's certificate (`sink.ca_file`) and the token (`sink.token_file`) the events arrive; with
/// another CA the handshake fails and they stay in the outbox.
@Suite(.serialized) struct NATSTLSTests {
    func server(_ pki: TestPKI) throws -> NATSServer {
        let server = try NATSServer(
            directory: pki.directory.appendingPathComponent("nats"),
            extraConfig: """
                tls { cert_file: "\(pki.path("server.pem"))", key_file: "\(pki.path("server.key"))" }
                authorization { token: "tls-token-1" }

                """)
        try server.start()
        return server
    }

    func agent(_ pki: TestPKI, _ server: NATSServer, ca: String, name: String) throws -> (AgentChild, AgentScratch) {
        try "tls-token-1\n".write(toFile: pki.path("nats.token"), atomically: true, encoding: .utf8)
        let scratch = try AgentScratch(prefix: "nats-tls-\(name)")
        try scratch.writeConfig(
            hostID: "nats-tls", logLevel: "error",
            """
            sink:
              type: nats
              url: tls://127.0.0.1:\(server.clientPort)
              ca_file: \(pki.path(ca))
              token_file: \(pki.path("nats.token"))
              timeout_seconds: 2
              connect_timeout_seconds: 1
              spread_seconds: 0
            retry:
              base_seconds: 0.1
              cap_seconds: 0.5
            """)
        return (try AgentChild(scratch, stderr: .nullDevice), scratch)
    }

    @Test func eventsArriveOverTLSWithTheServersCAAndNotWithAnother() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = try server(pki)
        defer { server.kill9() }
        let client = try JetStreamClient(
            urls: "tls://127.0.0.1:\(server.clientPort)", token: "tls-token-1", caFile: pki.path("ca.pem"))
        try client.addStream("USAGE", subjects: ["usage.>"])

        let (trusting, scratch) = try agent(pki, server, ca: "ca.pem", name: "ok")
        defer { scratch.remove() }
        let arrived = await waitUntil(within: 20) { try client.lastSequence("USAGE") >= 2 }
        #expect(arrived, "no event arrived over TLS")
        #expect(await trusting.terminate(within: 30) == .exited(0))
        let stored = try client.messages("USAGE")
        #expect(stored.allSatisfy { $0.subject == "usage._.operator.nats-tls" })

        let (distrusting, otherScratch) = try agent(pki, server, ca: "other-ca.pem", name: "other")
        defer { otherScratch.remove() }
        try await Task.sleep(for: .seconds(4))
        #expect(await distrusting.terminate(within: 30) == .exited(0))
        let database = try AgentDatabase.open(path: otherScratch.databaseFile.path)
        #expect(try database.stats().pendingEvents >= 2, "events left the outbox without a trusted server")
        #expect(try client.lastSequence("USAGE") == UInt64(stored.count), "a server the agent should not trust got events")
    }
}
