public import Foundation

/// A threshold rule fired or resolved for one instance: ThresholdEvent v1.0.
///
/// It ships through the outbox like a `UsageEvent` and is told apart by `event_type`
/// ("threshold_alert"). UsageModel knows nothing of rules, so the rule's parts come in as plain
/// values; `Metering` builds these from its evaluator's transitions.
///
/// `eventID` is a name-based UUID (v5) of the event type, host, rule, instance, state and period
/// (see `ThresholdEvent.eventID(hostID:rule:instanceID:state:period:)`): evaluating the same period
/// again gives the same id, so a consumer that dedupes by it keeps one firing and one resolved.
public struct ThresholdEvent: Sendable, Equatable, Codable {
    public static let eventType = "threshold_alert"
    /// The wire version this type encodes; the JSON Schema is docs/schema/threshold-event-1.0.json.
    public static let currentVersion = "1.0"

    /// Whether the rule started or stopped firing.
    public enum State: String, Sendable, Codable, CaseIterable {
        case firing
        case resolved
    }

    public var eventID: String
    public var eventType: String
    public var version: String
    /// When the event was made, unix seconds.
    public var timestamp: Int64
    public var hostID: String
    public var instanceID: String
    public var userID: String
    public var orgID: String?
    public var state: State
    /// The rule's name.
    public var rule: String
    /// `info`, `warning` or `critical`.
    public var severity: String
    /// The metric the rule watches (`cpu_percent_avg`, `filesystem_used_percent`, …).
    public var metric: String
    /// The rule's comparison: `>`, `>=`, `<` or `<=`.
    public var op: String
    /// The metric's value in `period`.
    public var value: Double
    /// The line that was crossed: the rule's `value` when firing, its clear value (`clear`, or
    /// `value` when the rule has none) when resolved.
    public var threshold: Double
    /// The rule's free labels.
    public var labels: [String: String]
    /// The closed period whose value made the transition.
    public var period: Period

    public init(
        hostID: String, instanceID: String, userID: String, orgID: String?, state: State, rule: String,
        severity: String, metric: String, op: String, value: Double, threshold: Double, labels: [String: String] = [:],
        period: Period, timestamp: Int64
    ) {
        self.eventID = Self.eventID(hostID: hostID, rule: rule, instanceID: instanceID, state: state, period: period)
        self.eventType = Self.eventType
        self.version = Self.currentVersion
        self.timestamp = timestamp
        self.hostID = hostID
        self.instanceID = instanceID
        self.userID = userID
        self.orgID = orgID
        self.state = state
        self.rule = rule
        self.severity = severity
        self.metric = metric
        self.op = op
        self.value = value
        self.threshold = threshold
        self.labels = labels
        self.period = period
    }

    /// UUID v5 in hostmeter's namespace of
    /// "threshold_alert\n<host_id>\n<rule>\n<instance_id>\n<state>\n<start>\n<end>".
    ///
    /// Newlines cannot occur in these parts (rule names are `[A-Za-z0-9_.:-]`, ids refuse control
    /// characters), so the name is unambiguous, and the event type in front keeps it apart from
    /// every `UsageEvent` name. The host is part of it as in `UsageEvent`: instance ids are unique
    /// per host, not across a fleet. Value, threshold, severity and labels are not: the same
    /// transition of the same rule over the same period is the same event.
    public static func eventID(hostID: String, rule: String, instanceID: String, state: State, period: Period) -> String {
        NameBasedUUID.v5(
            name: "\(eventType)\n\(hostID)\n\(rule)\n\(instanceID)\n\(state.rawValue)\n\(period.start)\n\(period.end)")
    }

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id", eventType = "event_type", version, timestamp, hostID = "host_id"
        case instanceID = "instance_id", userID = "user_id", orgID = "org_id", state, rule, severity, metric, op
        case value, threshold, labels, period
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(eventID, forKey: .eventID)
        try container.encode(eventType, forKey: .eventType)
        try container.encode(version, forKey: .version)
        try container.encode(timestamp, forKey: .timestamp)
        try container.encode(hostID, forKey: .hostID)
        try container.encode(instanceID, forKey: .instanceID)
        try container.encode(userID, forKey: .userID)
        // org_id is always present, null when unset, as in UsageEvent.
        try container.encode(orgID, forKey: .orgID)
        try container.encode(state, forKey: .state)
        try container.encode(rule, forKey: .rule)
        try container.encode(severity, forKey: .severity)
        try container.encode(metric, forKey: .metric)
        try container.encode(op, forKey: .op)
        try container.encode(value, forKey: .value)
        try container.encode(threshold, forKey: .threshold)
        try container.encode(labels, forKey: .labels)
        try container.encode(period, forKey: .period)
    }
}

/// Turns threshold events into their wire bytes: JSON with sorted keys, like `UsageEventEncoder`.
public struct ThresholdEventEncoder: Sendable {
    public init() {}

    /// The event's bytes in version 1.0. Throws for a non-finite `value` or `threshold`, which
    /// JSON cannot carry (the evaluator never produces one).
    public func encode(_ event: ThresholdEvent) throws -> Data {
        var event = event
        event.version = ThresholdEvent.currentVersion
        return try Self.jsonEncoder.encode(event)
    }

    private static let jsonEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
