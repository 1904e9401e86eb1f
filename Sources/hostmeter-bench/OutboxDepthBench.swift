import ArgumentParser
import Foundation
import Outbox
import Probes

/// What a deep outbox costs the agent: a sample's commit (its checkpoint and the outbox figures
/// the sampler reads) and a shipper step (lease a batch, acknowledge it), with the outbox holding
/// nothing else and with `--pending` events waiting behind (a consumer outage's backlog). Issue
/// 18's target: within 10 % of each other.
struct OutboxDepthBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox-depth",
        abstract: "A sample's commit and a shipper step, with an empty outbox and with a backlog.")

    @Option(help: "Events waiting in the deep outbox.")
    var pending = 300_000

    @Option(help: "Sample commits measured at each depth.")
    var samples = 300

    @Option(help: "Shipper steps measured at each depth.")
    var steps = 40

    @Option(help: "Events per shipper step (the default batch).")
    var batch = 500

    struct Depth: Encodable {
        let pending: Int
        let sampleCommitMicros: Double
        let shipperStepMicros: Double
        let nextDueMicros: Double

        enum CodingKeys: String, CodingKey {
            case pending
            case sampleCommitMicros = "sample_commit_cpu_us"
            case shipperStepMicros = "shipper_step_cpu_us"
            case nextDueMicros = "next_due_cpu_us"
        }
    }

    struct Report: Encodable {
        let benchmark = "outbox_depth"
        let empty: Depth
        let deep: Depth
        let sampleRatio: Double
        let shipperRatio: Double
        let target = "deep / empty <= 1.10 for a sample and a shipper step"

        enum CodingKeys: String, CodingKey {
            case benchmark, empty, deep, target
            case sampleRatio = "sample_commit_deep_over_empty"
            case shipperRatio = "shipper_step_deep_over_empty"
        }
    }

    func validate() throws {
        guard (0...5_000_000).contains(pending), (10...100_000).contains(samples), (5...10_000).contains(steps),
            (1...10_000).contains(batch)
        else { throw ValidationError("counts out of range") }
    }

    func run() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostmeter-depth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try AgentDatabase.open(path: directory.appendingPathComponent("depth.sqlite").path)
        var offset = 0
        func events(_ count: Int) throws -> [OutboxEvent] {
            defer { offset += count }
            return try OutboxBench.makeEvents(count, offset: offset)
        }
        let empty = try measure(database, events: events)
        var filled = 0
        while filled < pending {
            let count = min(1000, pending - filled)
            try database.commit(MeteringCommit(events: try events(count)))
            filled += count
        }
        // The backlog waits for a retry (an outage): due later, so every step passes it by.
        try database.writer.write { db in try db.execute(sql: "UPDATE events SET next_attempt_at = 4e9") }
        FileHandle.standardError.write(Data("outbox-depth: \(filled) events pending\n".utf8))
        let deep = try measure(database, events: events)
        let report = Report(
            empty: empty, deep: deep, sampleRatio: deep.sampleCommitMicros / empty.sampleCommitMicros,
            shipperRatio: deep.shipperStepMicros / empty.shipperStepMicros)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }

    /// Median thread CPU of a sample's commit (one checkpoint, the outbox figures read inside the
    /// transaction) and of a shipper step (lease a batch of due events, acknowledge it).
    func measure(_ database: AgentDatabase, events: (Int) throws -> [OutboxEvent]) throws -> Depth {
        var commits: [Double] = []
        for index in 0..<samples {
            let checkpoint = CheckpointRecord(instanceID: "host", format: 1, state: Data("{\"n\":\(index)}".utf8))
            let started = HostClock.threadCPUNanos()
            try database.commit(MeteringCommit(checkpoints: [checkpoint]), readingStats: true)
            commits.append(Double(HostClock.threadCPUNanos() - started) / 1000)
        }
        var shipperSteps: [Double] = []
        var nextDue: [Double] = []
        for _ in 0..<steps {
            try database.commit(MeteringCommit(events: try events(batch)))
            let started = HostClock.threadCPUNanos()
            let leased = try database.lease(now: 1_000, maxEvents: batch, maxBytes: 64 << 20)
            try database.acknowledge(leased.map(\.id))
            shipperSteps.append(Double(HostClock.threadCPUNanos() - started) / 1000)
            let asked = HostClock.threadCPUNanos()
            _ = try database.nextAttemptAt()
            nextDue.append(Double(HostClock.threadCPUNanos() - asked) / 1000)
        }
        return Depth(
            pending: try database.stats().pendingEvents, sampleCommitMicros: Self.median(commits),
            shipperStepMicros: Self.median(shipperSteps), nextDueMicros: Self.median(nextDue))
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }
}
