import ArgumentParser
import Foundation
import Logging
import Outbox
import Shipping
import UsageModel

/// Outbox throughput: enqueue in batches and one per transaction, and drain to a consumer.
struct OutboxBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Enqueue and drain rates of the outbox.",
        discussion: "With --consumer-url, drains over HTTP to that consumer (scripts/bench.sh starts one on 127.0.0.1).")

    @Option(help: "Events to enqueue in batches.")
    var events = 100_000

    @Option(help: "Events per transaction when enqueueing in batches.")
    var batch = 1000

    @Option(help: "Events to enqueue one per transaction.")
    var singles = 2000

    @Option(help: "The consumer's /events URL to drain to over HTTP; without it, drains to a file.")
    var consumerURL: String?

    @Option(help: "Events per HTTP request when draining.")
    var shipBatch = 500

    struct Report: Encodable {
        let benchmark = "outbox"
        let events: Int
        let enqueueBatchedEventsPerSecond: Double
        let enqueueBatchSize: Int
        let enqueueSingleEventsPerSecond: Double
        let drainEventsPerSecond: Double
        let drainSink: String
        let drainBatchSize: Int
        let databaseSynchronous = "FULL (WAL)"

        enum CodingKeys: String, CodingKey {
            case benchmark, events
            case enqueueBatchedEventsPerSecond = "enqueue_batched_events_per_second"
            case enqueueBatchSize = "enqueue_batch_size"
            case enqueueSingleEventsPerSecond = "enqueue_single_events_per_second"
            case drainEventsPerSecond = "drain_events_per_second"
            case drainSink = "drain_sink"
            case drainBatchSize = "drain_batch_size"
            case databaseSynchronous = "database_synchronous"
        }
    }

    func validate() throws {
        guard (1...10_000_000).contains(events), (1...100_000).contains(batch), (0...1_000_000).contains(singles),
            (1...100_000).contains(shipBatch)
        else { throw ValidationError("counts out of range") }
    }

    /// Realistic events: contiguous 30 s periods of 100 instances, about 400 bytes each.
    static func makeEvents(_ count: Int, offset: Int) throws -> [OutboxEvent] {
        let encoder = UsageEventEncoder()
        return try (offset..<(offset + count)).map { index in
            let instance = "vm-\(index % 100)"
            let start = 1_763_726_400 + Int64(index / 100) * 30
            let event = UsageEvent(
                hostID: "bench-host", instanceID: instance, userID: "u-\(index % 17)", orgID: "org-1",
                period: Period(start: start, end: start + 30),
                metrics: UsageMetrics(
                    cpuSeconds: 12, cpuPercentAvg: 41.7, memoryGB: 3.91, memoryPercent: 48.9, storageGB: 20.4,
                    networkEgressMB: 1.82, networkIngressMB: 0.44),
                timestamp: start + 30)
            return OutboxEvent(
                eventID: event.eventID, eventType: event.eventType, instanceID: instance, periodStart: start,
                periodEnd: start + 30, payload: try encoder.encode(event))
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
        if let consumerURL {
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
        while try database.stats().pendingEvents > 0, Date().timeIntervalSince(start) < 600 {
            try await Task.sleep(for: .milliseconds(20))
        }
        let drainSeconds = Date().timeIntervalSince(start)
        shipping.cancel()
        _ = try? await shipping.value
        await sink.shutdown()
        let left = try database.stats().pendingEvents
        guard left == 0 else { throw ValidationError("drain did not finish: \(left) events left") }

        try printJSON(
            Report(
                events: total, enqueueBatchedEventsPerSecond: batchedRate.rounded(), enqueueBatchSize: batch,
                enqueueSingleEventsPerSecond: singleRate.rounded(), drainEventsPerSecond: (Double(total) / drainSeconds).rounded(),
                drainSink: consumerURL == nil ? "file" : "http", drainBatchSize: shipBatch))
    }
}
