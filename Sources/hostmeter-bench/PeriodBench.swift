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
        /// The same with UsageEvent 1.1: the event chained and a signed commitment every 1,000 events.
        let engineAndCommitChained: Distribution
        /// `UsageEvent.chained(after:)`: the canonical form, its SHA-256, the hash in the event.
        let chainPerEvent: Distribution
        /// `UsageCommitment.make` over 1,000 leaves: the Merkle root and the Ed25519 signature.
        let commitmentOf1000: Distribution
        /// `UsageChainVerifier` over the events and commitments (signatures checked), per event.
        let verifyPerEvent: Distribution
        let databaseSynchronous = "FULL (WAL)"

        enum CodingKeys: String, CodingKey {
            case benchmark, iterations, engine
            case engineAndCommit = "engine_and_commit"
            case engineAndCommitChained = "engine_and_commit_chained"
            case chainPerEvent = "chain_per_event"
            case commitmentOf1000 = "commitment_of_1000"
            case verifyPerEvent = "verify_per_event"
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
        /// Each step closes a period and stores it through `recorder`; the first is not counted.
        func steps(_ recorder: inout MeteringRecorder) throws -> [UInt64] {
            var nanoseconds: [UInt64] = []
            for index in 0...iterations {
                var next = sample
                next.time = reading(index).time
                if let cpu = next.cpu { next.cpu?.total.user = cpu.total.user + UInt64(index) }
                let start = HostClock.monotonicNanos()
                _ = try recorder.record(next)
                let elapsed = HostClock.monotonicNanos() - start
                if index > 0 { nanoseconds.append(elapsed) }
            }
            return nanoseconds
        }
        var recorder = try MeteringRecorder(
            database: database, configuration: configuration, identity: identity, encoder: UsageEventEncoder())
        let stored = try steps(&recorder)
        // UsageEvent 1.1, commitments on: the same steps, chained and committed.
        let chainedDatabase = try AgentDatabase.open(path: directory.appendingPathComponent("chained.sqlite").path)
        let identityKey = SigningIdentity.generate()
        var chainedRecorder = try MeteringRecorder(
            database: chainedDatabase, configuration: configuration, identity: identity,
            encoder: UsageEventEncoder(version: .v1_1),
            commitments: CommitmentSettings(identity: identityKey, maxEvents: 1000, maxSeconds: 86_400))
        let chainedSteps = try steps(&chainedRecorder)

        // The parts alone.
        let template = UsageEvent(
            hostID: "bench", instanceID: "vm-0001", userID: "user-1", orgID: "org-1", period: Period(start: 0, end: 30),
            metrics: UsageMetrics(
                cpuSeconds: 17, cpuPercentAvg: 28.333, memoryGB: 3.912, memoryPercent: 48.9, storageGB: 20.4,
                networkEgressMB: 1.823, networkIngressMB: 0.441, gpuSeconds: 0),
            timestamp: 31)
        var head: ChainHead?
        var chain: [UInt64] = []
        var leaves: [CommitmentLeaf] = []
        for index in 0..<max(iterations, 1000) {
            var event = template
            event.period = Period(start: Int64(index) * 30, end: Int64(index) * 30 + 30)
            let start = HostClock.monotonicNanos()
            let chained = try event.chained(after: head)
            chain.append(HostClock.monotonicNanos() - start)
            head = chained.chainHead
            leaves.append(CommitmentLeaf(instanceID: event.instanceID, seq: head!.seq, hash: head!.hash, period: event.period))
        }
        var commitments: [UInt64] = []
        for _ in 0..<20 {
            let start = HostClock.monotonicNanos()
            _ = try UsageCommitment.make(
                leaves: Array(leaves.prefix(1000)), after: nil, hostID: "bench", timestamp: 0, identity: identityKey)
            commitments.append(HostClock.monotonicNanos() - start)
        }
        let delivered = try chainedDatabase.events().map(\.payload)
        var verifying: [UInt64] = []
        for _ in 0..<5 {
            var verifier = UsageChainVerifier(keys: [nil: identityKey.publicIdentity])
            let start = HostClock.monotonicNanos()
            for (index, payload) in delivered.enumerated() { verifier.add(payload, location: "\(index)") }
            let report = verifier.report()
            verifying.append((HostClock.monotonicNanos() - start) / UInt64(max(delivered.count, 1)))
            guard report.problems.isEmpty else { throw ValidationError("the bench's events do not verify: \(report.problems[0])") }
        }
        try printJSON(
            Report(
                iterations: iterations, engine: Distribution(nanoseconds: engine),
                engineAndCommit: Distribution(nanoseconds: stored),
                engineAndCommitChained: Distribution(nanoseconds: chainedSteps), chainPerEvent: Distribution(nanoseconds: chain),
                commitmentOf1000: Distribution(nanoseconds: commitments), verifyPerEvent: Distribution(nanoseconds: verifying)))
    }
}
