import Foundation
import Logging
public import Metering
public import Outbox
public import Probes
public import UsageModel

/// What one recorded sample produced.
public struct RecordedStep: Sendable {
    public var events: [UsageEvent]
    public var gaps: [MeteringGap]
    /// Threshold alerts that fired or resolved with the periods this step closed.
    public var thresholdEvents: [ThresholdEvent] = []
}

/// Turns host samples into stored events: the metering engine plus the one transaction that
/// stores a step's events with its checkpoint.
///
/// The in-memory state advances only after the transaction commits. If it fails (disk full, say),
/// the next sample is measured against the last committed checkpoint, so nothing is lost: the
/// usage lands in a later, longer period.
public struct MeteringRecorder: Sendable {
    public let database: AgentDatabase
    public let configuration: MeterConfiguration
    public let identity: InstanceIdentity
    public let encoder: UsageEventEncoder
    /// `outbox.max_bytes`: a step is not stored while the database is over it (see `AgentDatabase.makeRoom`).
    public let maxBytes: Int?
    public private(set) var states: [String: MeterState]
    /// Threshold evaluation state: pending and firing (rule, instance) pairs.
    public private(set) var thresholdStates: [ThresholdKey: ThresholdState]

    private static let stateEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// Loads the stored checkpoints. A checkpoint of an unknown format stops the agent rather than
    /// being guessed at.
    public init(
        database: AgentDatabase, configuration: MeterConfiguration, identity: InstanceIdentity,
        encoder: UsageEventEncoder, maxBytes: Int? = nil
    ) throws(OutboxError) {
        self.database = database
        self.maxBytes = maxBytes
        self.configuration = configuration
        self.identity = identity
        self.encoder = encoder
        var states: [String: MeterState] = [:]
        for (instanceID, record) in try database.checkpoints() {
            guard record.format == MeterState.format,
                let state = try? JSONDecoder().decode(MeterState.self, from: record.state)
            else {
                throw .unknownCheckpointFormat(path: database.path, instanceID: instanceID, format: record.format)
            }
            states[instanceID] = state
        }
        self.states = states
        var thresholdStates: [ThresholdKey: ThresholdState] = [:]
        for record in try database.thresholdStates() {
            guard let state = try? JSONDecoder().decode(ThresholdState.self, from: record.state) else {
                throw .failed(
                    path: database.path, operation: "load threshold state",
                    reason: "state of rule \(record.rule) for \(record.instanceID) is not readable")
            }
            thresholdStates[ThresholdKey(rule: record.rule, instanceID: record.instanceID)] = state
        }
        self.thresholdStates = thresholdStates
    }

    /// Meters `sample` for the host instance and stores the result. A sample without a boot ID
    /// cannot be metered and is skipped (nil).
    ///
    /// Each period the step closes is checked against `rules` (with `gauges`, the sampled values of
    /// the gauge metrics); the alerts that fire or resolve go into the outbox and the rules' state
    /// into the database in the same transaction as the period's usage, so a crash can neither lose
    /// an alert nor send it twice.
    public mutating func record(
        _ sample: HostSample, gpus: [(uuid: String, busyNanoseconds: UInt64)] = [], rules: [ThresholdRule] = [],
        gauges: [ThresholdMetric: Double] = [:]
    ) throws(OutboxError) -> RecordedStep? {
        guard var reading = InstanceReading.host(sample) else { return nil }
        for gpu in gpus {
            reading.counters[CounterSource(.gpuBusyNanoseconds, gpu.uuid)] = gpu.busyNanoseconds
        }
        let step = Meter.advance(
            states[identity.instanceID], with: reading, identity: identity, configuration: configuration)
        var round: ThresholdRound?
        var alerts: [ThresholdEvent] = []
        if !step.events.isEmpty, !(rules.isEmpty && thresholdStates.isEmpty) {
            let subjects = step.events.map { ThresholdSubject(event: $0, isHost: true, gauges: gauges) }
            let evaluated = ThresholdEvaluator.evaluate(rules: rules, subjects: subjects, states: thresholdStates)
            alerts = evaluated.transitions.map {
                $0.event(hostID: configuration.hostID, timestamp: Int64(sample.time.wallNanos / 1_000_000_000))
            }
            round = evaluated
        }
        let commit: MeteringCommit
        do {
            commit = try makeCommit(step, alerts: alerts, thresholdStates: round?.states)
        } catch {
            throw .failed(path: database.path, operation: "encode metering step", reason: "\(error)")
        }
        try database.commit(commit, now: Int64(sample.time.wallNanos / 1_000_000_000), maxBytes: maxBytes)
        states[identity.instanceID] = step.state
        if let round { thresholdStates = round.states }
        return RecordedStep(events: step.events, gaps: step.gaps, thresholdEvents: alerts)
    }

    private func makeCommit(
        _ step: MeterStep, alerts: [ThresholdEvent], thresholdStates: [ThresholdKey: ThresholdState]?
    ) throws -> MeteringCommit {
        let events = try step.events.map { event in
            OutboxEvent(
                eventID: event.eventID, eventType: event.eventType, instanceID: event.instanceID,
                periodStart: event.period.start, periodEnd: event.period.end, payload: try encoder.encode(event))
        }
        let gaps = step.gaps.map {
            GapRecord(instanceID: $0.instanceID, reason: $0.reason.rawValue, from: $0.from, to: $0.to, detail: $0.detail)
        }
        let baselines = try step.baseline.map {
            [BaselineRecord(
                instanceID: $0.instanceID, bootID: $0.bootID, wallNanos: $0.wallNanos,
                counters: try Self.stateEncoder.encode($0.counters))]
        } ?? []
        let checkpoint = CheckpointRecord(
            instanceID: identity.instanceID, format: MeterState.format, state: try Self.stateEncoder.encode(step.state))
        let alertEncoder = ThresholdEventEncoder()
        let alertEvents = try alerts.map { alert in
            OutboxEvent(
                eventID: alert.eventID, eventType: ThresholdEvent.eventType, instanceID: alert.instanceID,
                periodStart: alert.period.start, periodEnd: alert.period.end, payload: try alertEncoder.encode(alert))
        }
        let stateRecords = try thresholdStates.map { states in
            try states.keys.sorted().map { key in
                ThresholdStateRecord(
                    rule: key.rule, instanceID: key.instanceID, state: try Self.stateEncoder.encode(states[key]))
            }
        }
        return MeteringCommit(
            checkpoints: [checkpoint], events: events + alertEvents, gaps: gaps, baselines: baselines,
            thresholdStates: stateRecords)
    }
}
