import Foundation
import Outbox
import TestSupport
import Testing
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// A real `hostmeter run` producing to librdkafka's mock cluster (three brokers, the topic
/// replicated three times) while it is killed with SIGKILL at random moments, Produce requests
/// fail and partition leaders move. Read back, the topic and the outbox's pending events hold
/// every event, each resent copy identical to the first, and the periods tile time from the
/// baseline on. Kafka's idempotence holds within one producer session: a copy may be written
/// again by the next agent when a kill fell between the delivery report and the outbox's delete,
/// which is why the billing consumer deduplicates by event_id (counted and printed here).
@Suite(.serialized) struct KafkaKillTests {
    @Test func killNineWithBrokerFaultsLosesNothing() async throws {
        let cluster = try KafkaMockCluster(topic: "usage", partitions: 3)
        let scratch = try AgentScratch(prefix: "kafka-kill")
        defer { scratch.remove() }
        try scratch.writeConfig(
            hostID: "kafka-kill", logLevel: "error",
            """
            sink:
              type: kafka
              batch_max_events: 2
              timeout_seconds: 3
              kafka:
                brokers: \(cluster.bootstraps)
                topic: usage
                properties:
                  linger.ms: "1"
            retry:
              base_seconds: 0.1
              cap_seconds: 1
            circuit_breaker:
              open_seconds: 0.5
            """)

        let kills = 8
        try await killRepeatedly(scratch, kills: kills) { round in
            if round == 2 { try cluster.failProduceRequests([6, 7, 19, 6]) }
            if round == 4 {
                for partition in 0..<cluster.partitions { try cluster.setLeader(partition: partition, broker: partition % 3 + 1) }
            }
            if round == 6 { try cluster.setBroker(2, up: false) }
        }
        try cluster.setBroker(2, up: true)
        try await runToAGracefulStop(scratch)

        var usage = DeliveredUsage()
        for record in try cluster.records() {
            let event = try usage.receive(record.value)
            #expect(record.headers["event_id"] == event.eventID)
            #expect(record.key == "kafka-kill")
        }
        #expect(usage.delivered > kills, "the topic holds \(usage.delivered) events")
        let database = try AgentDatabase.open(path: scratch.databaseFile.path)
        try usage.addPending(database)
        let count = try usage.expectTiling(database)
        print("kafka kill test: kills=\(kills) events=\(count) in_topic=\(usage.delivered) copies_written_again=\(usage.copies)")
    }

    /// SIGTERM while every broker is down: the batch in flight waits for its delivery reports at
    /// most the drain time (not `sink.timeout_seconds` per batch), the agent exits 0, and the
    /// events stay in the outbox.
    @Test func aStopDuringAnOutageTakesAboutTheDrainTime() async throws {
        let cluster = try KafkaMockCluster(topic: "usage", partitions: 1)
        for broker in 1...3 { try cluster.setBroker(broker, up: false) }
        let scratch = try AgentScratch(prefix: "kafka-stop")
        defer { scratch.remove() }
        try scratch.writeConfig(
            hostID: "kafka-stop", logLevel: "error",
            """
            sink:
              type: kafka
              timeout_seconds: 120
              spread_seconds: 0
              kafka:
                brokers: \(cluster.bootstraps)
                topic: usage
            """)
        let agent = try AgentChild(scratch, stderr: .nullDevice)
        try await Task.sleep(for: .seconds(4))
        let stopped = ContinuousClock.now
        #expect(await agent.terminate(within: 60) == .exited(0))
        let took = ContinuousClock.now - stopped
        #expect(took < .seconds(25), "the stop took \(took) with sink.timeout_seconds 120")
        let database = try AgentDatabase.open(path: scratch.databaseFile.path)
        #expect(try database.stats().pendingEvents >= 2)
        #expect(try database.deadLetters().isEmpty)
    }
}
