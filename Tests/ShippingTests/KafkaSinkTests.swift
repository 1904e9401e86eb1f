import Foundation
import Outbox
import TestSupport
import Testing
import UsageModel

@testable import Shipping

/// The `kafka` sink against librdkafka's mock cluster: three brokers on loopback, a topic of four
/// partitions replicated three times, with request errors and leader changes injected.
@Suite(.serialized) struct KafkaSinkTests {
    func sink(_ cluster: KafkaMockCluster, timeout: Double = 10, properties: [(String, String)] = []) throws -> KafkaSink {
        try KafkaSink(
            settings: KafkaSink.Settings(
                brokers: cluster.bootstraps, topic: cluster.topic, hostID: "host-1",
                properties: [("linger.ms", "2")] + properties, deliveryTimeoutSeconds: timeout))
    }

    /// `count` events spread over `instances` instances, each instance's periods contiguous.
    static func events(_ count: Int, instances: Int = 5, from first: Int = 0) throws -> [OutboxEvent] {
        let encoder = UsageEventEncoder()
        return try (first..<(first + count)).map { index in
            let instance = "vm-\(index % instances)"
            let start = 1_763_726_400 + Int64(index / instances) * 30
            let event = UsageEvent(
                hostID: "host-1", instanceID: instance, userID: "u-1", orgID: nil, period: Period(start: start, end: start + 30),
                metrics: UsageMetrics(cpuSeconds: Int64(index % 11), memoryGB: 1.5, storageGB: 20), timestamp: start + 30)
            return try OutboxEvent(event, encoder: encoder)
        }
    }

    /// Every record once, keyed by its instance, with its headers; each instance's records in one
    /// partition in period order.
    func expectExactlyOnce(_ records: [KafkaMockCluster.Record], _ events: [OutboxEvent]) throws {
        let ids = records.compactMap { $0.headers["event_id"] }
        #expect(ids.count == records.count, "a record without its event_id header")
        #expect(ids.count == Set(ids).count, "a record is stored twice")
        #expect(Set(ids) == Set(events.map(\.eventID)))
        let byID = Dictionary(uniqueKeysWithValues: events.map { ($0.eventID, $0) })
        var partitionOf: [String: Int] = [:]
        var lastStart: [String: Int64] = [:]
        for record in records {
            let event = try #require(byID[record.headers["event_id"] ?? ""])
            #expect(record.key == event.instanceID)
            #expect(record.headers["content-type"] == "application/json")
            #expect(record.headers["schema-version"] == "1.0")
            #expect(record.headers["event-type"] == "resource_usage")
            let decoded = try JSONDecoder().decode(UsageEvent.self, from: record.value)
            #expect(decoded == (try JSONDecoder().decode(UsageEvent.self, from: event.payload)))
            #expect(partitionOf[event.instanceID, default: record.partition] == record.partition, "an instance in two partitions")
            partitionOf[event.instanceID] = record.partition
            #expect(event.periodStart > lastStart[event.instanceID, default: .min], "\(event.instanceID)'s records out of order")
            lastStart[event.instanceID] = event.periodStart
        }
    }

    @Test func aBatchIsDeliveredOnItsReportsKeyedByInstance() async throws {
        let cluster = try KafkaMockCluster()
        let sink = try sink(cluster)
        let events = try Self.events(200)
        #expect(await sink.send(Array(events[0..<120])) == .delivered)
        #expect(await sink.send(Array(events[120..<200])) == .delivered)
        await sink.shutdown()
        try expectExactlyOnce(try cluster.records(), events)
    }

    /// Produce requests that fail (not the leader, timed out, not enough replicas) and the leader
    /// moving while a batch is in flight: librdkafka's idempotent retries deliver every record
    /// once, in order.
    @Test func injectedErrorsAndALeaderChangeDeliverEveryRecordOnceInOrder() async throws {
        let cluster = try KafkaMockCluster()
        let sink = try sink(cluster)
        let events = try Self.events(600)
        #expect(await sink.send(Array(events[0..<100])) == .delivered)
        try cluster.failProduceRequests([6, 7, 19, 6, 7])
        let moving = Task.detached {
            try await Task.sleep(for: .milliseconds(5))
            for partition in 0..<cluster.partitions { try cluster.setLeader(partition: partition, broker: partition % 3 + 1) }
        }
        #expect(await sink.send(Array(events[100..<400])) == .delivered)
        try await moving.value
        try cluster.failProduceRequests([7, 6])
        for partition in 0..<cluster.partitions { try cluster.setLeader(partition: partition, broker: (partition + 1) % 3 + 1) }
        #expect(await sink.send(Array(events[400..<600])) == .delivered)
        await sink.shutdown()
        try expectExactlyOnce(try cluster.records(), events)
    }

    @Test func everyBrokerDownIsRetriedAndTheBatchGoesOnceTheyAreBack() async throws {
        let cluster = try KafkaMockCluster()
        let sink = try sink(cluster, timeout: 1.5)
        let events = try Self.events(50)
        #expect(await sink.send(Array(events[0..<10])) == .delivered)
        for broker in 1...3 { try cluster.setBroker(broker, up: false) }
        guard case .retryable(let reason, let detail, _) = await sink.send(Array(events[10..<30])) else {
            Issue.record("a batch to a cluster that is down was not retried")
            return
        }
        #expect(reason == .timeout)
        #expect(detail.contains("timed out"))
        for broker in 1...3 { try cluster.setBroker(broker, up: true) }
        var outcome = await sink.send(Array(events[10..<50]))
        let deadline = Date().addingTimeInterval(20)
        while outcome != .delivered, Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
            outcome = await sink.send(Array(events[10..<50]))
        }
        #expect(outcome == .delivered)
        await sink.shutdown()
        let ids = try cluster.records().compactMap { $0.headers["event_id"] }
        #expect(Set(ids) == Set(events.map(\.eventID)))
    }

    @Test func aRecordLargerThanTheProducerTakesIsDeadLetteredAlone() async throws {
        let cluster = try KafkaMockCluster()
        let outbox = try FilledOutbox(events: 30)
        var big = outbox.events[3]
        big.eventID = "big-1"
        big.instanceID = "vm-big"
        big.payload = Data(#"{"user_id":"u-1","pad":""#.utf8) + Data(repeating: UInt8(ascii: "x"), count: 4000) + Data(#""}"#.utf8)
        try outbox.database.commit(MeteringCommit(events: [big]))
        let service = ShipperService(
            database: outbox.database, sink: try sink(cluster, properties: [("message.max.bytes", "2000")]),
            settings: ShipperSettings(
                batchMaxEvents: 10, retry: RetryPolicy(baseSeconds: 0.05, capSeconds: 0.2), failureThreshold: 100,
                openSeconds: 0.5, longestWaitSeconds: 0.05, drainSeconds: 0),
            logger: ShipperIntegrationTests.quietLogger)
        let task = Task { try await service.run() }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, try outbox.database.stats().pendingEvents > 0 {
            try await Task.sleep(for: .milliseconds(50))
        }
        task.cancel()
        _ = try? await task.value
        let dead = try outbox.database.deadLetters()
        #expect(dead.map(\.event.eventID) == ["big-1"])
        #expect(dead.first?.reason.contains("broker_rejected") == true)
        let ids = try cluster.records().compactMap { $0.headers["event_id"] }
        #expect(ids.count == 30)
        #expect(Set(ids) == Set(outbox.eventIDs))
    }

    @Test func aPropertyLibrdkafkaRefusesIsNamed() {
        #expect {
            try KafkaSink(
                settings: KafkaSink.Settings(
                    brokers: "127.0.0.1:9", topic: "t", hostID: "h", properties: [("no.such.property", "1")]))
        } throws: { error in
            (error as? KafkaSink.ConfigurationRefused)?.property == "no.such.property"
        }
        #expect {
            try KafkaSink.Settings(brokers: "127.0.0.1:9", topic: "t", hostID: "h", properties: [("linger.ms", "soon")]).check()
        } throws: { error in
            (error as? KafkaSink.ConfigurationRefused)?.property == "linger.ms"
        }
    }
}
