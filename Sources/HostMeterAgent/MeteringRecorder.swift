import Foundation
import Logging
public import Metering
public import Outbox
public import Probes
public import UsageModel

/// What one recorded sample produced: the engine's step, as stored, and the outbox after it.
public struct RecordedStep: Sendable {
    public var step: MeteringStep
    /// The outbox's figures as of the commit that stored the step (when asked for: `readingStats`).
    public var outbox: OutboxStats?

    public var events: [UsageEvent] { step.events }
    public var gaps: [MeteringGap] { step.gaps }
    /// Threshold alerts that fired or resolved with the periods this step closed.
    public var thresholdEvents: [ThresholdEvent] { step.thresholdEvents }
}

/// Stores what the metering engine decides: encodes a `MeteringStep` and commits it in one
/// transaction (events, gaps, baselines, alerts, checkpoints, threshold state).
///
/// The state advances only after the transaction commits. If it fails (disk full, say), the next
/// sample is measured against the last committed checkpoint, so nothing is lost: the usage lands in
/// a later, longer period.
public struct MeteringRecorder: Sendable {
    public let database: AgentDatabase
    public let engine: MeteringEngine
    public let encoder: UsageEventEncoder
    /// `outbox.max_bytes`: a step is not stored while the database is over it (see `AgentDatabase.makeRoom`).
    public let maxBytes: Int?
    /// The checkpoints and threshold state as of the last commit.
    public private(set) var state: MeteringState
    /// The head of each instance's hash chain as of the last commit (UsageEvent 1.1).
    public private(set) var chains: [String: ChainHead]
    /// Signed commitments over the chained events; nil: none are made.
    public let commitments: CommitmentSettings?
    /// The last commitment, and the chained events stored since, as of the last commit.
    public private(set) var commitmentHead: CommitmentHead?
    public private(set) var uncommitted: [CommitmentLeaf]

    public var configuration: MeterConfiguration { engine.configuration }
    public var identity: InstanceIdentity { engine.identity }
    public var meterHost: Bool { engine.meterHost }
    public var states: [String: MeterState] { state.checkpoints }
    public var unsaved: Set<String> { state.unsaved }
    public var thresholdStates: [ThresholdKey: ThresholdState] { state.thresholds }

    private static let stateEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// Loads the stored checkpoints. A checkpoint of an unknown format stops the agent rather than
    /// being guessed at.
    public init(
        database: AgentDatabase, configuration: MeterConfiguration, identity: InstanceIdentity,
        encoder: UsageEventEncoder, maxBytes: Int? = nil, meterHost: Bool = true, commitments: CommitmentSettings? = nil
    ) throws(OutboxError) {
        self.commitments = encoder.version == .v1_1 ? commitments : nil
        self.database = database
        self.engine = MeteringEngine(configuration: configuration, identity: identity, meterHost: meterHost)
        self.maxBytes = maxBytes
        self.encoder = encoder
        var checkpoints: [String: MeterState] = [:]
        for (instanceID, record) in try database.checkpoints() {
            guard record.format == MeterState.format,
                let state = try? JSONDecoder().decode(MeterState.self, from: record.state)
            else {
                throw .unknownCheckpointFormat(path: database.path, instanceID: instanceID, format: record.format)
            }
            checkpoints[instanceID] = state
        }
        var thresholds: [ThresholdKey: ThresholdState] = [:]
        for record in try database.thresholdStates() {
            guard let state = try? JSONDecoder().decode(ThresholdState.self, from: record.state) else {
                throw .failed(
                    path: database.path, operation: "load threshold state",
                    reason: "state of rule \(record.rule) for \(record.instanceID) is not readable")
            }
            thresholds[ThresholdKey(rule: record.rule, instanceID: record.instanceID)] = state
        }
        self.state = MeteringState(checkpoints: checkpoints, thresholds: thresholds)
        chains = try database.chainHeads()
        (commitmentHead, uncommitted) = try database.commitmentState()
    }

    /// Runs the engine on one sample (`MeteringEngine.step`: what each argument means and what is
    /// billed) and stores its step in one transaction; the state advances only once it committed.
    /// A sample without a boot ID cannot be metered and is skipped (nil).
    ///
    /// The alerts that fire or resolve go into the outbox and the rules' state into the database
    /// in the same transaction as the period's usage, so a crash can neither lose an alert nor
    /// send it twice.
    public mutating func record(
        _ sample: HostSample, instances observed: [InstanceObservation]? = nil,
        gpus: [(uuid: String, busyNanoseconds: UInt64)] = [], rules: [ThresholdRule] = [],
        gauges: [ThresholdMetric: Double] = [:], readingStats: Bool = false
    ) throws(OutboxError) -> RecordedStep? {
        guard
            let step = engine.step(state, sample: sample, instances: observed, gpus: gpus, rules: rules, gauges: gauges)
        else { return nil }
        let commit: MeteringCommit
        do {
            commit = try makeCommit(step, now: Int64(sample.time.wallNanos / 1_000_000_000))
        } catch {
            throw .failed(path: database.path, operation: "encode metering step", reason: "\(error)")
        }
        let outbox = try database.commit(
            commit, now: Int64(sample.time.wallNanos / 1_000_000_000), maxBytes: maxBytes, readingStats: readingStats)
        state = step.state
        chains.merge(commit.chainHeads) { $1 }
        if let head = commit.commitmentHead {
            commitmentHead = head
            uncommitted = []
        } else {
            uncommitted += commit.commitmentLeaves
        }
        return RecordedStep(step: step, outbox: outbox)
    }

    /// Writes the checkpoints that moved on since they were last written: on a clean shutdown, so
    /// a restart resumes from the latest sample (and an instance removed while the agent is down
    /// gets its final period up to that sample).
    public mutating func flush() throws(OutboxError) {
        let pending = engine.checkpointsToFlush(state)
        guard !pending.isEmpty else { return }
        let checkpoints: [CheckpointRecord]
        do {
            checkpoints = try pending.map {
                CheckpointRecord(instanceID: $0.instanceID, format: MeterState.format, state: Data(try $0.state.checkpointJSON()))
            }
        } catch {
            throw .failed(path: database.path, operation: "encode checkpoints", reason: "\(error)")
        }
        _ = try database.commit(MeteringCommit(checkpoints: checkpoints))
        state.unsaved = []
    }

    private func makeCommit(_ step: MeteringStep, now: Int64) throws -> MeteringCommit {
        let events = step.events, gaps = step.gaps, baselines = step.baselines, alerts = step.thresholdEvents
        let thresholdStates = step.thresholdStates
        let changed = step.checkpointsToWrite.compactMap { id in step.state.checkpoints[id].map { (id, $0) } }
        // UsageEvent 1.1: each instance's events chained in period order after its stored head; the
        // new heads go into the same transaction as the events.
        var heads: [String: ChainHead] = [:]
        var leaves: [CommitmentLeaf] = []
        var usageEvents: [OutboxEvent] = []
        usageEvents.reserveCapacity(events.count)
        if encoder.version == .v1_1 {
            // The step's gaps go into the same chains, in time order with the periods, so that a
            // consumer sees why an instance's periods have a hole where they do.
            let items: [(instanceID: String, start: Int64, order: Int, event: UsageEvent?, gap: MeteringGap?)] =
                events.map { ($0.instanceID, $0.period.start, 0, $0, nil) } + step.gaps.map { ($0.instanceID, $0.from, 1, nil, $0) }
            for item in items.sorted(by: { ($0.instanceID, $0.start, $0.order) < ($1.instanceID, $1.start, $1.order) }) {
                let previous = heads[item.instanceID] ?? chains[item.instanceID]
                if let event = item.event {
                    let chained = try event.chained(after: previous)
                    heads[event.instanceID] = chained.chainHead
                    usageEvents.append(try OutboxEvent(chained, encoder: encoder))
                    if let head = chained.chainHead {
                        leaves.append(CommitmentLeaf(instanceID: event.instanceID, seq: head.seq, hash: head.hash, period: event.period))
                    }
                } else if let gap = item.gap {
                    let owner = step.state.checkpoints[gap.instanceID]?.identity
                        ?? (gap.instanceID == identity.instanceID ? identity : nil)
                    let chained = try MeteringGapEvent.chained(
                        hostID: configuration.hostID, instanceID: gap.instanceID, userID: owner?.userID ?? "",
                        orgID: owner?.orgID, reason: gap.reason.rawValue, from: gap.from, to: gap.to, detail: gap.detail,
                        timestamp: now, after: previous)
                    heads[gap.instanceID] = chained.chainHead
                    let span = Period(start: gap.from, end: max(gap.to, gap.from + 1))
                    usageEvents.append(
                        OutboxEvent(
                            eventID: chained.eventID, eventType: MeteringGapEvent.eventType, instanceID: gap.instanceID,
                            periodStart: span.start, periodEnd: span.end, payload: Data(try chained.wireJSON()),
                            userID: owner?.userID, orgID: owner?.orgID))
                    leaves.append(CommitmentLeaf(instanceID: gap.instanceID, seq: chained.seq, hash: chained.hash, period: span))
                }
            }
        } else {
            usageEvents = try events.map { try OutboxEvent($0, encoder: encoder) }
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
            CheckpointRecord(instanceID: id, format: MeterState.format, state: Data(try state.checkpointJSON()))
        }
        let alertEncoder = ThresholdEventEncoder()
        let alertEvents = try alerts.map { alert in
            OutboxEvent(
                eventID: alert.eventID, eventType: ThresholdEvent.eventType, instanceID: alert.instanceID,
                periodStart: alert.period.start, periodEnd: alert.period.end, payload: try alertEncoder.encode(alert),
                userID: alert.userID, orgID: alert.orgID)
        }
        let stateRecords = try thresholdStates.map { states in
            try states.keys.sorted().map { key in
                ThresholdStateRecord(
                    rule: key.rule, instanceID: key.instanceID, state: try Self.stateEncoder.encode(states[key]))
            }
        }
        var commit = MeteringCommit(
            checkpoints: checkpoints, events: usageEvents + alertEvents, gaps: gapRecords, baselines: baselineRecords,
            thresholdStates: stateRecords, removedCheckpoints: step.removedCheckpoints, chainHeads: heads)
        if let commitments {
            let pending = uncommitted + leaves
            let since = commitmentHead?.madeAt ?? pending.map(\.period.end).min() ?? now
            if !pending.isEmpty, pending.count >= commitments.maxEvents || now - since >= commitments.maxSeconds {
                let commitment = try UsageCommitment.make(
                    leaves: pending, after: commitmentHead, hostID: configuration.hostID, timestamp: now,
                    identity: commitments.identity)
                commit.events.append(
                    OutboxEvent(
                        eventID: commitment.eventID, eventType: UsageCommitment.eventType, instanceID: "",
                        periodStart: commitment.period.start, periodEnd: commitment.period.end,
                        payload: Data(try commitment.wireJSON()), userID: nil, orgID: nil))
                commit.commitmentHead = commitment.head
            } else {
                commit.commitmentLeaves = leaves
            }
        }
        return commit
    }
}

/// When the agent signs a commitment over the chained events it stored (UsageEvent 1.1): once
/// `maxEvents` are waiting, or once `maxSeconds` have passed since the last commitment.
public struct CommitmentSettings: Sendable {
    public var identity: SigningIdentity
    public var maxEvents: Int
    public var maxSeconds: Int64

    public init(identity: SigningIdentity, maxEvents: Int = 1000, maxSeconds: Int64 = 300) {
        self.identity = identity
        self.maxEvents = maxEvents
        self.maxSeconds = maxSeconds
    }
}
