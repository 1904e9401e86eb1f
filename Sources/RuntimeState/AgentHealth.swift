import Foundation
public import Shipping

/// The agent's readiness, judged from the snapshot: degraded when samples stopped, the outbox is
/// at its bound or its database cannot be written, dead letters take more than a tenth of the
/// bound, or the sink's or Alertmanager's endpoint refuses the agent's requests (a rotated token, a
/// wrong URL).
public struct AgentHealth: Sendable, Equatable, Encodable {
    public var ok: Bool
    public var reasons: [String]
    public var lastSampleAgeSeconds: Double?
    public var outboxPendingEvents: Int?
    public var outboxDeadLetters: Int?
    public var outboxDeadLetterBytes: Int?
    public var outboxBytes: Int?
    public var outboxMaxBytes: Int
    public var circuitBreaker: String
    public var databaseWritable: Bool
    /// Registered instances (besides the host), those not running, and refused manifest files.
    /// A stopped VM is normal: it does not make the agent degraded.
    public var instancesMetered: Int
    public var instancesNotRunning: [String]
    public var manifestErrors: Int
    /// At most this many not-running ids are listed; the count is always complete.
    public static let listedNotRunning = 20

    /// Samples are late after this many sample intervals without one.
    public static let staleIntervals = 3.0

    /// Dead letters are usage not billed yet, kept (never pruned) under `outbox.max_bytes`. Past
    /// this share of the bound the agent is degraded: far below the 90 % where merging starts and
    /// the 100 % where metering is held back, so a person replays them long before they could.
    public static let deadLetterShare = 0.1

    /// Whether the latest sample is recent enough (no more than `staleIntervals` sample intervals old).
    public static func sampleIsFresh(_ snapshot: AgentSnapshot, now: Double) -> Bool {
        guard let sample = snapshot.lastSample else { return false }
        return now - Double(sample.wallNanos) / 1e9 <= Double(snapshot.sampleSeconds) * staleIntervals
    }

    public init(snapshot: AgentSnapshot, shipper: ShipperSnapshot, alertmanager: AlertmanagerSnapshot? = nil, now: Double) {
        var reasons: [String] = []
        let staleAfter = Double(snapshot.sampleSeconds) * Self.staleIntervals
        if let sample = snapshot.lastSample {
            let age = max(0, now - Double(sample.wallNanos) / 1e9)
            lastSampleAgeSeconds = (age * 1000).rounded() / 1000
            if age > staleAfter {
                reasons.append("no sample for \(Int(age)) s (more than \(Int(Self.staleIntervals)) sample intervals)")
            }
        } else {
            lastSampleAgeSeconds = nil
            if now - snapshot.startedAt > staleAfter {
                reasons.append("no sample since the agent started \(Int(now - snapshot.startedAt)) s ago")
            }
        }
        outboxPendingEvents = snapshot.outbox?.pendingEvents
        outboxDeadLetters = snapshot.outbox?.deadLetters
        outboxDeadLetterBytes = snapshot.outbox?.deadLetterBytes
        outboxBytes = snapshot.outbox?.databaseBytes
        outboxMaxBytes = snapshot.outboxMaxBytes
        if snapshot.outboxFull {
            reasons.append("outbox over its bound of \(snapshot.outboxMaxBytes) bytes: usage is held back until it drains")
        }
        if let outbox = snapshot.outbox,
            Double(outbox.deadLetterBytes) > Double(snapshot.outboxMaxBytes) * Self.deadLetterShare
        {
            reasons.append(
                "\(outbox.deadLetters) dead letters take \(outbox.deadLetterBytes) bytes, more than "
                    + "\(Int(Self.deadLetterShare * 100)) % of outbox.max_bytes: usage the consumer refused is not billed; "
                    + "see `hostmeter outbox dead`, then `hostmeter outbox replay`")
        }
        if let refusal = shipper.endpointRefusal {
            reasons.append(
                "the sink refuses the agent's requests (\(refusal)): check sink.url and sink.token_file; "
                    + "every event is kept and retried")
        }
        if let refusal = alertmanager?.delivery.endpointRefusal {
            reasons.append(
                "alertmanager refuses the agent's requests (\(refusal)): check alerting.alertmanager_url; "
                    + "the alerts are kept and retried")
        }
        databaseWritable = snapshot.storeError == nil || snapshot.outboxFull
        if let error = snapshot.storeError, !snapshot.outboxFull {
            reasons.append("database not writable: \(error)")
        }
        circuitBreaker = shipper.breakerState.name
        let instances = snapshot.instances.filter { !$0.isHost }
        instancesMetered = instances.count
        instancesNotRunning = instances.filter { !$0.running }.map(\.instanceID)
        manifestErrors = snapshot.manifestProblems
        ok = reasons.isEmpty
        self.reasons = reasons
    }

    enum CodingKeys: String, CodingKey {
        case status, reasons, lastSampleAgeSeconds = "last_sample_age_seconds", outbox
        case circuitBreaker = "circuit_breaker", databaseWritable = "database_writable", instances
    }
    enum InstanceKeys: String, CodingKey {
        case metered, running, notRunning = "not_running", notRunningCount = "not_running_count"
        case manifestErrors = "manifest_errors"
    }

    enum OutboxKeys: String, CodingKey {
        case pendingEvents = "pending_events", deadLetters = "dead_letters", deadLetterBytes = "dead_letter_bytes"
        case bytes, maxBytes = "max_bytes"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ok ? "ok" : "degraded", forKey: .status)
        try container.encode(reasons, forKey: .reasons)
        try container.encode(lastSampleAgeSeconds, forKey: .lastSampleAgeSeconds)
        var outbox = container.nestedContainer(keyedBy: OutboxKeys.self, forKey: .outbox)
        try outbox.encode(outboxPendingEvents, forKey: .pendingEvents)
        try outbox.encode(outboxDeadLetters, forKey: .deadLetters)
        try outbox.encode(outboxDeadLetterBytes, forKey: .deadLetterBytes)
        try outbox.encode(outboxBytes, forKey: .bytes)
        try outbox.encode(outboxMaxBytes, forKey: .maxBytes)
        try container.encode(circuitBreaker, forKey: .circuitBreaker)
        try container.encode(databaseWritable, forKey: .databaseWritable)
        var instances = container.nestedContainer(keyedBy: InstanceKeys.self, forKey: .instances)
        try instances.encode(instancesMetered, forKey: .metered)
        try instances.encode(instancesMetered - instancesNotRunning.count, forKey: .running)
        try instances.encode(instancesNotRunning.count, forKey: .notRunningCount)
        try instances.encode(Array(instancesNotRunning.prefix(Self.listedNotRunning)), forKey: .notRunning)
        try instances.encode(manifestErrors, forKey: .manifestErrors)
    }
}
