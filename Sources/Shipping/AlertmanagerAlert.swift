public import Foundation
public import UsageModel

/// One alert as Alertmanager's v2 API takes it (`postableAlert`).
public struct AlertmanagerAlert: Sendable, Equatable, Encodable {
    public var labels: [String: String]
    public var annotations: [String: String]
    public var startsAt: Date
    public var endsAt: Date
    public var generatorURL: String?

    enum CodingKeys: String, CodingKey {
        case labels, annotations, startsAt, endsAt, generatorURL
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(labels, forKey: .labels)
        try container.encode(annotations, forKey: .annotations)
        try container.encode(Self.rfc3339(startsAt), forKey: .startsAt)
        try container.encode(Self.rfc3339(endsAt), forKey: .endsAt)
        try container.encodeIfPresent(generatorURL, forKey: .generatorURL)
    }

    /// RFC 3339 in UTC with milliseconds, as Alertmanager parses it.
    static func rfc3339(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// The labels Alertmanager identifies the alert of `event` by: `alertname` (the rule),
    /// `severity`, `instance_id`, `user_id`, `host_id`, `org_id` when set, and the rule's own
    /// labels. hostmeter's labels win over a rule label of the same name, so a rule cannot make
    /// two instances' alerts one.
    public static func labels(of event: ThresholdEvent) -> [String: String] {
        var labels = event.labels
        labels["alertname"] = event.rule
        labels["severity"] = event.severity
        labels["instance_id"] = event.instanceID
        labels["user_id"] = event.userID
        labels["host_id"] = event.hostID
        if let org = event.orgID { labels["org_id"] = org } else { labels["org_id"] = nil }
        return labels
    }

    /// `summary` and `description`, and the numbers apart (`metric`, `value`, `threshold`, `op`)
    /// for templates. The value is the one the event was made with.
    public static func annotations(of event: ThresholdEvent) -> [String: String] {
        let value = number(event.value)
        let threshold = number(event.threshold)
        let comparison = "\(event.metric) \(event.op) \(number(event.threshold))"
        let summary: String
        let description: String
        switch event.state {
        case .firing:
            summary = "\(event.rule): \(comparison) on \(event.instanceID)"
            description =
                "\(event.metric) was \(value) (\(event.op) \(threshold)) on instance \(event.instanceID) of user "
                + "\(event.userID) on host \(event.hostID) in the period \(rfc3339(seconds: event.period.start)) to "
                + "\(rfc3339(seconds: event.period.end))."
        case .resolved:
            summary = "\(event.rule): resolved on \(event.instanceID)"
            description =
                "\(event.metric) was \(value), past the clear value \(threshold), on instance \(event.instanceID) of "
                + "user \(event.userID) on host \(event.hostID) in the period \(rfc3339(seconds: event.period.start)) "
                + "to \(rfc3339(seconds: event.period.end))."
        }
        return [
            "summary": summary, "description": description, "metric": event.metric, "value": value,
            "threshold": threshold, "op": event.op,
        ]
    }

    static func rfc3339(seconds: Int64) -> String { rfc3339(Date(timeIntervalSince1970: Double(seconds))) }

    /// A number as people write it: no ".0" on whole numbers, no exponent for ordinary sizes.
    static func number(_ value: Double) -> String {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    /// A request's body: the alerts as a JSON array, keys sorted.
    static func body(_ alerts: [AlertmanagerAlert]) throws -> Data {
        try encoder.encode(alerts)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
