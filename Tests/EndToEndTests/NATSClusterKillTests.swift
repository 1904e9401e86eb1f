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

        var random = SystemRandomNumberGenerator()
        let kills = 8
        let victim = cluster.nodes[1]
        for round in 0..<kills {
            if round == 2 { victim.kill9() }
            if round == 5 { try victim.start() }
            let agent = try AgentChild(scratch, stderr: .nullDevice)
            try await Task.sleep(for: .milliseconds(Int.random(in: 1300...2600, using: &random)))
            #expect(agent.isRunning)
            kill(agent.pid, SIGKILL)
            agent.process.waitUntilExit()
        }
        let last = try AgentChild(scratch, stderr: .nullDevice)
        try await Task.sleep(for: .milliseconds(3000))
        #expect(await last.terminate(within: 60) == .exited(0))

        let decoder = JSONDecoder()
        let stored = try client.messages("USAGE")
        var events: [String: UsageEvent] = [:]
        for message in stored {
            let event = try decoder.decode(UsageEvent.self, from: message.data)
            #expect(message.messageID == event.eventID, "the message id is not the event's id")
            #expect(events[event.eventID] == nil, "event \(event.eventID) is stored twice")
            #expect(message.subject == "usage._.operator.nats-kill")
            events[event.eventID] = event
        }
        let delivered = events.count
        let database = try AgentDatabase.open(path: scratch.databaseFile.path)
        for pending in try database.events() {
            let event = try decoder.decode(UsageEvent.self, from: pending.payload)
            if let earlier = events[event.eventID] { #expect(earlier == event) }
            events[event.eventID] = event
        }
        #expect(delivered > kills, "the stream holds \(delivered) events")

        // Nothing missing: from the baseline to the open period, the host's periods tile time.
        let ordered = events.values.sorted { $0.period.start < $1.period.start }
        let baseline = try #require(try database.baselines().first)
        #expect(ordered.first?.period.start == baseline.wallNanos / 1_000_000_000)
        for (earlier, later) in zip(ordered, ordered.dropFirst()) {
            #expect(later.period.start == earlier.period.end, "\(earlier.period) then \(later.period)")
        }
        #expect(try database.deadLetters().isEmpty)
        print("nats cluster kill test: kills=\(kills) events=\(ordered.count) stored=\(delivered) pending=\(ordered.count - delivered)")
    }
}
