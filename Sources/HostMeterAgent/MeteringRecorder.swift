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
    }

    /// Meters `sample` for the host instance and stores the result. A sample without a boot ID
    /// cannot be metered and is skipped (nil).
    public mutating func record(_ sample: HostSample) throws(OutboxError) -> RecordedStep? {
        guard let reading = InstanceReading.host(sample) else { return nil }
        let step = Meter.advance(
            states[identity.instanceID], with: reading, identity: identity, configuration: configuration)
        let commit: MeteringCommit
        do {
            commit = try makeCommit(step)
        } catch {
            throw .failed(path: database.path, operation: "encode metering step", reason: "\(error)")
        }
        try database.commit(commit, now: Int64(sample.time.wallNanos / 1_000_000_000), maxBytes: maxBytes)
        states[identity.instanceID] = step.state
        return RecordedStep(events: step.events, gaps: step.gaps)
    }

    private func makeCommit(_ step: MeterStep) throws -> MeteringCommit {
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
        return MeteringCommit(checkpoints: [checkpoint], events: events, gaps: gaps, baselines: baselines)
    }
}
