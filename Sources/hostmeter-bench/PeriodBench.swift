import ArgumentParser
import Foundation
import HostMeterAgent
import Metering
import Outbox
import Probes
import UsageModel

/// The cost of closing a period: the pure engine step, and the step with its SQLite transaction.
struct PeriodBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "period", abstract: "Cost of metering a sample that closes a period, with and without storing it.")

    @Option(help: "Measured iterations.")
    var iterations = 2000

    struct Report: Encodable {
        let benchmark = "close_period"
        let iterations: Int
        let engine: Distribution
        let engineAndCommit: Distribution
        let databaseSynchronous = "FULL (WAL)"

        enum CodingKeys: String, CodingKey {
            case benchmark, iterations, engine
            case engineAndCommit = "engine_and_commit"
            case databaseSynchronous = "database_synchronous"
        }
    }

    func validate() throws {
        guard (1...1_000_000).contains(iterations) else { throw ValidationError("--iterations must be 1…1000000") }
    }

    func run() throws {
        let sampler = HostSampler()
        let sample = sampler.sample()
        guard let base = InstanceReading.host(sample) else { throw ValidationError("this host gives no boot ID") }
        let configuration = MeterConfiguration(hostID: "bench", intervalSeconds: 1)
        let identity = InstanceIdentity(instanceID: "bench", userID: "bench")

        // Every reading is one second after the previous one, so every step closes a period.
        func reading(_ index: Int) -> InstanceReading {
            var reading = base
            reading.time = SampleTime(
                wallNanos: base.time.wallNanos + Int64(index) * 1_000_000_000,
                bootNanos: base.time.bootNanos + UInt64(index) * 1_000_000_000)
            for key in reading.counters.keys { reading.counters[key]! += UInt64(index) * 1_000_000 }
            return reading
        }

        var state: MeterState?
        var engine: [UInt64] = []
        for index in 0...iterations {
            let next = reading(index)
            let start = HostClock.monotonicNanos()
            let step = Meter.advance(state, with: next, identity: identity, configuration: configuration)
            let elapsed = HostClock.monotonicNanos() - start
            if index > 0 { engine.append(elapsed) }
            state = step.state
        }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostmeter-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try AgentDatabase.open(path: directory.appendingPathComponent("bench.sqlite").path)
        var recorder = try MeteringRecorder(
            database: database, configuration: configuration, identity: identity, encoder: UsageEventEncoder())
        var stored: [UInt64] = []
        for index in 0...iterations {
            var next = sample
            next.time = reading(index).time
            if let cpu = next.cpu { next.cpu?.total.user = cpu.total.user + UInt64(index) }
            let start = HostClock.monotonicNanos()
            _ = try recorder.record(next)
            let elapsed = HostClock.monotonicNanos() - start
            if index > 0 { stored.append(elapsed) }
        }
        try printJSON(
            Report(
                iterations: iterations, engine: Distribution(nanoseconds: engine),
                engineAndCommit: Distribution(nanoseconds: stored)))
    }
}
