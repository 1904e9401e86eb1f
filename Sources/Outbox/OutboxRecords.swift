public import Foundation
public import UsageModel

/// An event as the outbox stores it: the encoded wire bytes and what is needed to find it.
public struct OutboxEvent: Sendable, Equatable {
    public var eventID: String
    public var eventType: String
    public var instanceID: String
    public var periodStart: Int64
    public var periodEnd: Int64
    /// The event in its wire version, exactly as it will be shipped.
    public var payload: Data
    /// Whom the event's usage is billed to, as its payload says (`user_id`, `org_id`; either may
    /// be absent): kept beside the payload so that a sink's subject or key needs no decoding.
    public var userID: String?
    public var orgID: String?

    public init(
        eventID: String, eventType: String, instanceID: String, periodStart: Int64, periodEnd: Int64, payload: Data,
        userID: String? = nil, orgID: String? = nil
    ) {
        self.eventID = eventID
        self.eventType = eventType
        self.instanceID = instanceID
        self.periodStart = periodStart
        self.periodEnd = periodEnd
        self.payload = payload
        self.userID = userID
        self.orgID = orgID
    }
}

extension OutboxEvent {
    /// A usage event as the outbox stores it, encoded by `encoder`.
    public init(_ event: UsageEvent, encoder: UsageEventEncoder) throws {
        self.init(
            eventID: event.eventID, eventType: event.eventType, instanceID: event.instanceID,
            periodStart: event.period.start, periodEnd: event.period.end, payload: try encoder.encode(event),
            userID: event.userID, orgID: event.orgID)
    }
}

/// An instance's metering checkpoint, opaque to the outbox: its format number and bytes.
public struct CheckpointRecord: Sendable, Equatable {
    public var instanceID: String
    public var format: Int
    public var state: Data

    public init(instanceID: String, format: Int, state: Data) {
        self.instanceID = instanceID
        self.format = format
        self.state = state
    }
}

/// A hole in an instance's accounting, kept for audit.
public struct GapRecord: Sendable, Equatable {
    public var instanceID: String
    public var reason: String
    public var from: Int64
    public var to: Int64
    public var detail: String

    public init(instanceID: String, reason: String, from: Int64, to: Int64, detail: String) {
        self.instanceID = instanceID
        self.reason = reason
        self.from = from
        self.to = to
        self.detail = detail
    }
}

/// The counters an instance's accounting (re)started from, kept for audit.
public struct BaselineRecord: Sendable, Equatable {
    public var instanceID: String
    public var bootID: String
    public var wallNanos: Int64
    /// JSON object of counter name → value.
    public var counters: Data

    public init(instanceID: String, bootID: String, wallNanos: Int64, counters: Data) {
        self.instanceID = instanceID
        self.bootID = bootID
        self.wallNanos = wallNanos
        self.counters = counters
    }
}

/// Everything one metering step writes, committed in one transaction: a checkpoint never advances
/// without the events it produced, and the events never land without their checkpoint.
public struct MeteringCommit: Sendable, Equatable {
    public var checkpoints: [CheckpointRecord]
    public var events: [OutboxEvent]
    public var gaps: [GapRecord]
    public var baselines: [BaselineRecord]
    /// The threshold evaluation state after this step, replacing the stored one; nil leaves it.
    public var thresholdStates: [ThresholdStateRecord]?
    /// Instances removed with this step: their checkpoints go in the transaction that stores their
    /// final periods.
    public var removedCheckpoints: [String]
    /// The heads of the instances' hash chains (UsageEvent 1.1) after this step's events, by
    /// instance id: stored with the events that made them, and kept when an instance goes, so
    /// that one coming back goes on from its last seq.
    public var chainHeads: [String: ChainHead]
    /// This step's chained events, for the next commitment to cover (when this step stores none).
    public var commitmentLeaves: [CommitmentLeaf]
    /// Set when this step stores a commitment (among `events`): it covers every leaf stored so far
    /// and this step's, and becomes the head.
    public var commitmentHead: CommitmentHead?

    public init(
        checkpoints: [CheckpointRecord] = [], events: [OutboxEvent] = [], gaps: [GapRecord] = [],
        baselines: [BaselineRecord] = [], thresholdStates: [ThresholdStateRecord]? = nil,
        removedCheckpoints: [String] = [], chainHeads: [String: ChainHead] = [:],
        commitmentLeaves: [CommitmentLeaf] = [], commitmentHead: CommitmentHead? = nil
    ) {
        self.chainHeads = chainHeads
        self.commitmentLeaves = commitmentLeaves
        self.commitmentHead = commitmentHead
        self.checkpoints = checkpoints
        self.events = events
        self.gaps = gaps
        self.baselines = baselines
        self.thresholdStates = thresholdStates
        self.removedCheckpoints = removedCheckpoints
    }

    public var isEmpty: Bool {
        checkpoints.isEmpty && events.isEmpty && gaps.isEmpty && baselines.isEmpty && thresholdStates == nil
            && removedCheckpoints.isEmpty && chainHeads.isEmpty && commitmentLeaves.isEmpty && commitmentHead == nil
    }
}

/// One rule's evaluation state for one instance (the JSON of `Metering.ThresholdState`).
public struct ThresholdStateRecord: Sendable, Equatable {
    public var rule: String
    public var instanceID: String
    public var state: Data

    public init(rule: String, instanceID: String, state: Data) {
        self.rule = rule
        self.instanceID = instanceID
        self.state = state
    }
}
