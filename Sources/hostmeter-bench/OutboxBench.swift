import ArgumentParser
import Foundation
import HostMeterAgent
import Logging
import NIOCore
import Outbox
import Probes
import Shipping
import UsageModel

/// Outbox throughput: enqueue in batches and one per transaction, and drain to a consumer.
struct OutboxBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Enqueue and drain rates of the outbox.",
        discussion:
            "With --consumer-url, drains over HTTP to that consumer (scripts/bench.sh starts one on 127.0.0.1); with "
            + "--nats-url, publishes to that NATS server's JetStream with the default subject template, in a stream "
            + "BENCH on usage.> made for the run; "
            + "with --kafka-brokers, produces to that Kafka cluster's --kafka-topic (scripts/kafka/kafka_mock_cluster.c).")

    @Option(help: "Events to enqueue in batches.")
    var events = 100_000

    @Option(help: "Events per transaction when enqueueing in batches.")
    var batch = 1000

    @Option(help: "Events to enqueue one per transaction.")
    var singles = 2000

    @Option(help: "The consumer's /events URL to drain to over HTTP; without it, drains to a file.")
    var consumerURL: String?

    @Option(help: "A nats-server with JetStream to drain to (nats://127.0.0.1:PORT); the stream BENCH is made anew.")
    var natsURL: String?

    @Option(help: "Kafka bootstrap brokers (host:port,…) to drain to, into --kafka-topic, which must exist.")
    var kafkaBrokers: String?

    @Option(help: "The Kafka topic to drain to.")
    var kafkaTopic = "bench"

    @Option(help: "Events per HTTP request, or per batch of NATS or Kafka records, when draining.")
    var shipBatch = 500

    struct Report: Encodable {
        let benchmark = "outbox"
        let events: Int
        let enqueueBatchedEventsPerSecond: Double
        let enqueueBatchSize: Int
        let enqueueSingleEventsPerSecond: Double
        let drainEventsPerSecond: Double
        /// From the first acknowledgement on: the drain once the sink is connected (a Kafka
        /// producer's first batch waits for librdkafka's broker threads, up to a second).
        let drainSteadyEventsPerSecond: Double
        /// From the start of the drain to the first acknowledged batch.
        let drainFirstBatchSeconds: Double
        let drainSink: String
        let drainBatchSize: Int
        let databaseSynchronous = "FULL (WAL)"
        let wireBytesPerEvent: WireSizes

        enum CodingKeys: String, CodingKey {
            case benchmark, events
            case enqueueBatchedEventsPerSecond = "enqueue_batched_events_per_second"
            case enqueueBatchSize = "enqueue_batch_size"
            case enqueueSingleEventsPerSecond = "enqueue_single_events_per_second"
            case drainEventsPerSecond = "drain_events_per_second"
            case drainSteadyEventsPerSecond = "drain_steady_events_per_second"
            case drainFirstBatchSeconds = "drain_first_batch_seconds"
            case drainSink = "drain_sink"
            case drainBatchSize = "drain_batch_size"
            case databaseSynchronous = "database_synchronous"
            case wireBytesPerEvent = "wire_bytes_per_event"
        }
    }

    /// Request body bytes per event of one batch, as each HTTP sink sends it, and the thread CPU
    /// that gzip costs per batch.
    struct WireSizes: Encodable {
        let batchEvents: Int
        let json: Double
        let jsonGzip: Double
        let cloudEvents: Double
        let cloudEventsGzip: Double
        let gzipCPUMicrosPerBatch: Double

        enum CodingKeys: String, CodingKey {
            case batchEvents = "batch_events"
            case json = "http"
            case jsonGzip = "http_gzip"
            case cloudEvents = "cloudevents"
            case cloudEventsGzip = "cloudevents_gzip"
            case gzipCPUMicrosPerBatch = "gzip_cpu_us_per_batch"
        }

        init(_ batch: [OutboxEvent]) throws {
            let json = BatchEncoder.jsonArray(batch)
            let cloudEvents = try BatchEncoder.cloudEventsBatch(batch, hostID: "bench-host")
            let count = Double(batch.count)
            batchEvents = batch.count
            self.json = (Double(json.count) / count).rounded()
            self.cloudEvents = (Double(cloudEvents.count) / count).rounded()
            jsonGzip = (Double(try BodyCompression.gzip.encode(ByteBuffer(bytes: json)).readableBytes) / count).rounded()
            cloudEventsGzip =
                (Double(try BodyCompression.gzip.encode(ByteBuffer(bytes: cloudEvents)).readableBytes) / count).rounded()
            let rounds = 50
            let input = ByteBuffer(bytes: json)
            let started = HostClock.threadCPUNanos()
            for _ in 0..<rounds { _ = try BodyCompression.gzip.encode(input) }
            gzipCPUMicrosPerBatch = (Double(HostClock.threadCPUNanos() - started) / Double(rounds) / 1000).rounded()
        }
    }

    func validate() throws {
        guard (1...10_000_000).contains(events), (1...100_000).contains(batch), (0...1_000_000).contains(singles),
            (1...100_000).contains(shipBatch)
        else { throw ValidationError("counts out of range") }
    }

    /// A value in [0, 1) that differs per event and field, as metered usage does (identical
    /// metrics would flatter compression).
    static func varied(_ index: Int, _ field: UInt64) -> Double {
        var z = UInt64(index) &* 0x9E37_79B9_7F4A_7C15 &+ field &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 31)) &* 0x94D0_49BB_1331_11EB
        return Double(z >> 11) / Double(1 << 53)
    }

    /// Realistic events: contiguous 30 s periods of 100 instances with varied metrics, about 450
    /// bytes each.
    static func makeEvents(_ count: Int, offset: Int) throws -> [OutboxEvent] {
        let encoder = UsageEventEncoder()
        return try (offset..<(offset + count)).map { index in
            let instance = "vm-\(index % 100)"
            let start = 1_763_726_400 + Int64(index / 100) * 30
            let event = UsageEvent(
                hostID: "bench-host", instanceID: instance, userID: "u-\(index % 17)", orgID: "org-1",
                period: Period(start: start, end: start + 30),
                metrics: UsageMetrics(
                    cpuSeconds: Int64(varied(index, 1) * 60), cpuPercentAvg: varied(index, 2) * 100,
                    memoryGB: varied(index, 3) * 64, memoryPercent: varied(index, 4) * 100, storageGB: varied(index, 5) * 500,
                    networkEgressMB: varied(index, 6) * 100, networkIngressMB: varied(index, 7) * 100),
                timestamp: start + 30)
            return try OutboxEvent(event, encoder: encoder)
        }
    }

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostmeter-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try AgentDatabase.open(path: directory.appendingPathComponent("bench.sqlite").path)

        let batched = try Self.makeEvents(events, offset: 0)
        var start = Date()
        for chunk in stride(from: 0, to: batched.count, by: batch) {
            try database.commit(MeteringCommit(events: Array(batched[chunk..<min(chunk + batch, batched.count)])))
        }
        let batchedRate = Double(events) / Date().timeIntervalSince(start)

        let single = try Self.makeEvents(singles, offset: events)
        start = Date()
        for event in single { try database.commit(MeteringCommit(events: [event])) }
        let singleRate = singles == 0 ? 0 : Double(singles) / Date().timeIntervalSince(start)

        let sink: any Sink
        let writtenBefore = try kafkaBrokers.map { try BenchTopic.recordCount(brokers: $0, topic: kafkaTopic) } ?? 0
        if let kafkaBrokers {
            sink = try KafkaSink(
                settings: KafkaSink.Settings(brokers: kafkaBrokers, topic: kafkaTopic, hostID: "bench-host", deliveryTimeoutSeconds: 30))
        } else if let natsURL {
            try BenchStream.replace(url: natsURL, name: "BENCH", subject: "usage.>")
            sink = NATSSink(
                settings: NATSSink.Settings(
                    servers: natsURL, subject: try NATSSubjectTemplate(AgentConfiguration.NATS.defaultSubject), hostID: "bench-host",
                    stream: "BENCH"))
        } else if let consumerURL {
            sink = try HTTPSink(settings: HTTPSink.Settings(url: consumerURL, format: .json, hostID: "bench-host"))
        } else {
            sink = FileSink(path: directory.appendingPathComponent("events.jsonl").path)
        }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let service = ShipperService(
            database: database, sink: sink,
            settings: ShipperSettings(batchMaxEvents: shipBatch, longestWaitSeconds: 0.01, drainSeconds: 0), logger: logger)
        let total = events + singles
        start = Date()
        let shipping = Task { try await service.run() }
        var firstAcknowledged: (at: Date, pending: Int)?
        while case let pending = try database.stats().pendingEvents, pending > 0, Date().timeIntervalSince(start) < 600 {
            if firstAcknowledged == nil, pending < total { firstAcknowledged = (Date(), pending) }
            try await Task.sleep(for: .milliseconds(5))
        }
        let end = Date()
        let drainSeconds = end.timeIntervalSince(start)
        let first = firstAcknowledged ?? (end, 0)
        let steadyRate = first.pending == 0 ? Double(total) / drainSeconds : Double(first.pending) / end.timeIntervalSince(first.at)
        shipping.cancel()
        _ = try? await shipping.value
        await sink.shutdown()
        let left = try database.stats().pendingEvents
        guard left == 0 else { throw ValidationError("drain did not finish: \(left) events left") }
        if let kafkaBrokers {
            let stored = try BenchTopic.recordCount(brokers: kafkaBrokers, topic: kafkaTopic) - writtenBefore
            guard stored == Int64(total) else { throw ValidationError("the topic holds \(stored) of \(total) events") }
        } else if let natsURL {
            let stored = try BenchStream.messageCount(url: natsURL, name: "BENCH")
            guard stored == UInt64(total) else { throw ValidationError("the stream holds \(stored) of \(total) events") }
        }

        try printJSON(
            Report(
                events: total, enqueueBatchedEventsPerSecond: batchedRate.rounded(), enqueueBatchSize: batch,
                enqueueSingleEventsPerSecond: singleRate.rounded(), drainEventsPerSecond: (Double(total) / drainSeconds).rounded(),
                drainSteadyEventsPerSecond: steadyRate.rounded(),
                drainFirstBatchSeconds: (first.at.timeIntervalSince(start) * 1000).rounded() / 1000,
                drainSink: kafkaBrokers != nil ? "kafka" : natsURL != nil ? "nats" : consumerURL == nil ? "file" : "http",
                drainBatchSize: shipBatch,
                wireBytesPerEvent: try WireSizes(Array(batched.prefix(shipBatch)))))
    }
}
