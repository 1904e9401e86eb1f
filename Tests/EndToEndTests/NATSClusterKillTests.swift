import Foundation
import Outbox
import TestSupport
import Testing
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// A real `hostmeter run` publishing to a three-node JetStream cluster (Debian's nats-server on
/// loopback) whose stream is replicated three times, while both sides are killed with SIGKILL: the
/// agent again and again at random moments (so some kills land between a PubAck and the outbox's
/// delete), one server node mid-stream (started again later on its own store). Read back, the
/// stream holds every event exactly once, and with the outbox's pending events its periods tile
/// time from the agent's baseline on.
@Suite(.serialized) struct NATSClusterKillTests {
    @Test func killNineOfAgentAndNodeLosesAndDuplicatesNothing() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nats-cluster-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let cluster = try NATSCluster(directory: directory)
        try cluster.start()
        defer { cluster.nodes.forEach { $0.kill9() } }
        let client = try JetStreamClient(urls: cluster.urls)
        try client.addStream("USAGE", subjects: ["usage.>"], replicas: 3)

        let scratch = try AgentScratch(prefix: "nats-kill")
        defer { scratch.remove() }
        try scratch.writeConfig(
            hostID: "nats-kill", logLevel: "error",
            """
            sink:
              type: nats
              url: \(cluster.urls)
              batch_max_events: 2
              timeout_seconds: 2
              connect_timeout_seconds: 1
              nats:
                stream: USAGE
                max_in_flight: 1
            retry:
              base_seconds: 0.1
              cap_seconds: 1
            circuit_breaker:
              open_seconds: 0.5
            """)

        let kills = 8
        let victim = cluster.nodes[1]
        try await killRepeatedly(scratch, kills: kills) { round in
            if round == 2 { victim.kill9() }
            if round == 5 { try victim.start() }
        }
        try await runToAGracefulStop(scratch)

        var usage = DeliveredUsage()
        for message in try client.messages("USAGE") {
            let event = try usage.receive(message.data)
            #expect(message.messageID == event.eventID, "the message id is not the event's id")
            #expect(message.subject == "usage._.operator.nats-kill")
        }
        // JetStream's deduplication by Nats-Msg-Id: the stream holds no event twice.
        #expect(usage.copies == 0, "\(usage.copies) events are stored twice")
        #expect(usage.delivered > kills, "the stream holds \(usage.delivered) events")
        let database = try AgentDatabase.open(path: scratch.databaseFile.path)
        try usage.addPending(database)
        let count = try usage.expectTiling(database)
        print("nats cluster kill test: kills=\(kills) events=\(count) stored=\(usage.delivered) pending=\(count - usage.delivered)")
    }
}
