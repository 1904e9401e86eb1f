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
    /// Whether the host itself is metered (`host.enabled`).
    public let meterHost: Bool
    /// `outbox.max_bytes`: a step is not stored while the database is over it (see `AgentDatabase.makeRoom`).
    public let maxBytes: Int?
    public private(set) var states: [String: MeterState]
    /// Instances whose state moved on since their checkpoint was last written (see `flush`).
    public private(set) var unsaved: Set<String> = []
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
        encoder: UsageEventEncoder, maxBytes: Int? = nil, meterHost: Bool = true
    ) throws(OutboxError) {
        self.meterHost = meterHost
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

    /// Meters `sample` for the host instance (when `meterHost`) and `instances` for theirs (nil: the
    /// instances were not probed with this sample; they are left as they are), and
    /// stores the result in one transaction. A sample without a boot ID cannot be metered and is
    /// skipped (nil).
    ///
    /// Lifecycle of an instance: it starts at its first reading (a baseline, nothing billed); a
    /// nil reading (cgroup or interface missing) bills its open period up to its last sample and
    /// then nothing until it runs again; an instance with a checkpoint that is no longer in
    /// `instances` was removed: its final partial period is billed and its checkpoint deleted in
    /// the same transaction.
    ///
    /// Each period the step closes is checked against `rules` (with `gauges`, the sampled values of
    /// the host's gauge metrics); the alerts that fire or resolve go into the outbox and the rules'
    /// state into the database in the same transaction as the period's usage, so a crash can neither
    /// lose an alert nor send it twice.
    ///
    /// The host's checkpoint is written every sample. An instance's is written when its step closed
    /// a period, recorded a gap or a baseline, or stopped, and on shutdown (`flush`): between those,
    /// a crash on the same boot resumes from the previous checkpoint and bills the same usage from
    /// the counters, so nothing is lost, and a host with 1,000 instances does not rewrite 1,000 rows
    /// every sample. The price: an unclean host reboot (power loss, panic) loses up to one period of
    /// each instance's usage instead of one sample interval.
    public mutating func record(
        _ sample: HostSample, instances observed: [InstanceObservation]? = nil, gpus: [(uuid: String, busyNanoseconds: UInt64)] = [],
        rules: [ThresholdRule] = [], gauges: [ThresholdMetric: Double] = [:]
    ) throws(OutboxError) -> RecordedStep? {
        guard var hostReading = InstanceReading.host(sample) else { return nil }
        let timestamp = Int64(sample.time.wallNanos / 1_000_000_000)
        var next = states
        var events: [UsageEvent] = []
        var gaps: [MeteringGap] = []
        var baselines: [MeteringBaseline] = []
        var changed: [String] = []
        var subjects: [ThresholdSubject] = []
        var advanced = Set<String>()

        func apply(_ step: MeterStep, for identity: InstanceIdentity, previous: MeterState?, always: Bool = false) {
            var state = step.state
            state.identity = identity
            let id = identity.instanceID
            if always || !step.events.isEmpty || !step.gaps.isEmpty || step.baseline != nil || previous == nil
                || previous?.stoppedAt != state.stoppedAt || previous?.identity != identity
            {
                changed.append(id)
            }
            next[id] = state
            advanced.insert(id)
            events += step.events
            gaps += step.gaps
            if let baseline = step.baseline { baselines.append(baseline) }
        }

        if meterHost {
            for gpu in gpus {
                hostReading.counters[CounterSource(.gpuBusyNanoseconds, gpu.uuid)] = gpu.busyNanoseconds
            }
            let previous = states[identity.instanceID]
            let step = Meter.advance(previous, with: hostReading, identity: identity, configuration: configuration)
            // The host's one checkpoint is cheap: written every sample, so an unclean reboot loses
            // at most one sample interval of its usage.
            apply(step, for: identity, previous: previous, always: true)
            subjects += step.events.map { ThresholdSubject(event: $0, isHost: true, gauges: gauges) }
        }

        let instances = observed ?? []
        var present = Set<String>()
        for instance in instances where instance.identity.instanceID != identity.instanceID {
            let id = instance.identity.instanceID
            guard present.insert(id).inserted else { continue }
            let previous = states[id]
            let step: MeterStep
            if var reading = instance.reading {
                reading.bootID = hostReading.bootID
                step = Meter.advance(previous, with: reading, identity: instance.identity, configuration: configuration)
            } else if let previous {
                step = Meter.suspend(previous, identity: instance.identity, configuration: configuration, timestamp: timestamp)
            } else {
                continue  // never seen running: nothing to bill, nothing to remember
            }
            apply(step, for: instance.identity, previous: previous)
            subjects += step.events.map { ThresholdSubject(event: $0, isHost: false, gauges: [:]) }
        }

        // Instances with a checkpoint that are no longer registered were removed.
        var removed: [String] = []
        for (id, state) in states
        where observed != nil && !present.contains(id) && !(meterHost && id == identity.instanceID) {
            // Billed to whom it last belonged; a checkpoint from before identities were kept is
            // the host's.
            let owner = state.identity ?? InstanceIdentity(instanceID: id, userID: identity.userID, orgID: identity.orgID)
            events += Meter.finish(state, identity: owner, configuration: configuration, timestamp: timestamp)
            next[id] = nil
            removed.append(id)
        }
        removed.sort()

        var round: ThresholdRound?
        var alerts: [ThresholdEvent] = []
        if !subjects.isEmpty, !(rules.isEmpty && thresholdStates.isEmpty) {
            round = ThresholdEvaluator.evaluate(rules: rules, subjects: subjects, states: thresholdStates)
        }
        for id in removed where (round?.states ?? thresholdStates).keys.contains(where: { $0.instanceID == id }) {
            let retired = ThresholdEvaluator.retire(instanceID: id, states: round?.states ?? thresholdStates)
            round = ThresholdRound(states: retired.states, transitions: (round?.transitions ?? []) + retired.transitions)
        }
        if let round {
            alerts = round.transitions.map { $0.event(hostID: configuration.hostID, timestamp: timestamp) }
        }

        let commit: MeteringCommit
        do {
            commit = try makeCommit(
                states: changed.compactMap { id in next[id].map { (id, $0) } }, events: events, gaps: gaps,
                baselines: baselines, removed: removed, alerts: alerts, thresholdStates: round?.states)
        } catch {
            throw .failed(path: database.path, operation: "encode metering step", reason: "\(error)")
        }
        try database.commit(commit, now: timestamp, maxBytes: maxBytes)
        states = next
        unsaved.formUnion(advanced)
        unsaved.subtract(changed)
        unsaved.subtract(removed)
        if let round { thresholdStates = round.states }
        return RecordedStep(events: events, gaps: gaps, thresholdEvents: alerts)
    }

    /// Writes the checkpoints that moved on since they were last written: on a clean shutdown, so
    /// a restart resumes from the latest sample (and an instance removed while the agent is down
    /// gets its final period up to that sample).
    public mutating func flush() throws(OutboxError) {
        guard !unsaved.isEmpty else { return }
        let checkpoints: [CheckpointRecord]
        do {
            checkpoints = try unsaved.sorted().compactMap { id in
                try states[id].map {
                    CheckpointRecord(instanceID: id, format: MeterState.format, state: try Self.stateEncoder.encode($0))
                }
            }
        } catch {
            throw .failed(path: database.path, operation: "encode checkpoints", reason: "\(error)")
        }
        try database.commit(MeteringCommit(checkpoints: checkpoints))
        unsaved = []
    }

    private func makeCommit(
        states changed: [(String, MeterState)], events: [UsageEvent], gaps: [MeteringGap], baselines: [MeteringBaseline],
        removed: [String], alerts: [ThresholdEvent], thresholdStates: [ThresholdKey: ThresholdState]?
    ) throws -> MeteringCommit {
        let usageEvents = try events.map { event in
            OutboxEvent(
                eventID: event.eventID, eventType: event.eventType, instanceID: event.instanceID,
                periodStart: event.period.start, periodEnd: event.period.end, payload: try encoder.encode(event))
        }
        let gapRecords = gaps.map {
            GapRecord(instanceID: $0.instanceID, reason: $0.reason.rawValue, from: $0.from, to: $0.to, detail: $0.detail)
        }
        let baselineRecords = try baselines.map {
            BaselineRecord(
                instanceID: $0.instanceID, bootID: $0.bootID, wallNanos: $0.wallNanos,
                counters: try Self.stateEncoder.encode($0.counters))
        }
        let checkpoints = try changed.map { id, state in
            CheckpointRecord(instanceID: id, format: MeterState.format, state: try Self.stateEncoder.encode(state))
        }
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
            checkpoints: checkpoints, events: usageEvents + alertEvents, gaps: gapRecords, baselines: baselineRecords,
            thresholdStates: stateRecords, removedCheckpoints: removed)
    }
}

/// One registered instance at one sample: who it belongs to and what was read (nil: not running,
/// its cgroup or an interface is missing).
public struct InstanceObservation: Sendable {
    public var identity: InstanceIdentity
    public var reading: InstanceReading?

    public init(identity: InstanceIdentity, reading: InstanceReading?) {
        self.identity = identity
        self.reading = reading
    }
}
