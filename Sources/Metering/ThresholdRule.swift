public import Foundation

/// What a threshold rule watches: a `UsageEvent` metric of the closed period, or a gauge the agent
/// samples beside it.
public enum ThresholdMetric: String, Sendable, Codable, CaseIterable {
    // UsageEvent metrics of the period.
    case cpuSeconds = "cpu_seconds"
    case cpuPercentAvg = "cpu_percent_avg"
    case memoryGB = "memory_gb"
    case memoryPercent = "memory_percent"
    case storageGB = "storage_gb"
    case networkEgressMB = "network_egress_mb"
    case networkIngressMB = "network_ingress_mb"
    case gpuSeconds = "gpu_seconds"
    // Gauges at the period's close.
    case filesystemUsedPercent = "filesystem_used_percent"
    case gpuUtilizationPercent = "gpu_utilization_percent"
    case gpuMemoryPercent = "gpu_memory_percent"
    case gpuTemperatureCelsius = "gpu_temperature_celsius"
    case loadPerCPU = "load_per_cpu"
    case outboxPendingEvents = "outbox_pending_events"
}

/// A comparison of a metric against a rule's value.
public enum ThresholdOperator: String, Sendable, Codable, CaseIterable {
    case greater = ">"
    case greaterOrEqual = ">="
    case less = "<"
    case lessOrEqual = "<="

    /// Whether `value` is on the firing side of `threshold`.
    public func holds(_ value: Double, _ threshold: Double) -> Bool {
        switch self {
        case .greater: value > threshold
        case .greaterOrEqual: value >= threshold
        case .less: value < threshold
        case .lessOrEqual: value <= threshold
        }
    }

    /// True for `>` and `>=`: the rule fires when the metric rises.
    public var isUpward: Bool { self == .greater || self == .greaterOrEqual }
}

public enum ThresholdSeverity: String, Sendable, Codable, CaseIterable {
    case info, warning, critical
}

/// Which metered instances a rule applies to.
public enum ThresholdScope: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The host instance (host mode).
    case host
    /// Every instance other than the host.
    case instances
    case instance(String)
    case user(String)

    public init?(_ text: String) {
        switch text {
        case "host": self = .host
        case "instances": self = .instances
        default:
            if text.hasPrefix("instance:"), text.count > "instance:".count {
                self = .instance(String(text.dropFirst("instance:".count)))
            } else if text.hasPrefix("user:"), text.count > "user:".count {
                self = .user(String(text.dropFirst("user:".count)))
            } else {
                return nil
            }
        }
    }

    public var description: String {
        switch self {
        case .host: "host"
        case .instances: "instances"
        case .instance(let id): "instance:\(id)"
        case .user(let id): "user:\(id)"
        }
    }

    /// Whether an instance falls under this scope.
    public func contains(instanceID: String, userID: String, isHost: Bool) -> Bool {
        switch self {
        case .host: isHost
        case .instances: !isHost
        case .instance(let id): id == instanceID
        case .user(let id): id == userID
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let scope = ThresholdScope(text) else {
            throw ThresholdRuleError(field: "scope", message: "must be host, instances, instance:<instance_id> or user:<user_id>")
        }
        self = scope
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A rule that is refused, naming the field (`rules[2].clear`, say) and what is wrong with it.
public struct ThresholdRuleError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { field.isEmpty ? message : "\(field): \(message)" }

    /// The same error with `prefix` in front of the field.
    public func within(_ prefix: String) -> ThresholdRuleError {
        let joined = field.isEmpty ? prefix : field.hasPrefix("[") ? prefix + field : "\(prefix).\(field)"
        return ThresholdRuleError(field: joined, message: message)
    }
}

/// A threshold rule: the one type the configuration, `PUT /thresholds`, the database and the
/// evaluator share.
///
/// Decoding validates: unknown fields, wrong types and inconsistent values (a `clear` on the firing
/// side of `value`, say) are `ThresholdRuleError`s naming the field.
public struct ThresholdRule: Sendable, Equatable, Codable {
    public var name: String
    public var metric: ThresholdMetric
    public var op: ThresholdOperator
    public var value: Double
    /// Consecutive periods the condition must hold before the rule fires.
    public var forPeriods: Int
    /// Hysteresis: a firing rule resolves only once the metric is past this value (default: `value`).
    public var clear: Double?
    public var severity: ThresholdSeverity
    public var scope: ThresholdScope
    public var labels: [String: String]

    public static let fields = ["name", "metric", "op", "value", "for", "clear", "severity", "scope", "labels"]
    public static let maxForPeriods = 100_000

    public init(
        name: String, metric: ThresholdMetric, op: ThresholdOperator, value: Double, forPeriods: Int = 1,
        clear: Double? = nil, severity: ThresholdSeverity = .warning, scope: ThresholdScope = .host,
        labels: [String: String] = [:]
    ) throws(ThresholdRuleError) {
        self.name = name
        self.metric = metric
        self.op = op
        self.value = value
        self.forPeriods = forPeriods
        self.clear = clear
        self.severity = severity
        self.scope = scope
        self.labels = labels
        try validate()
    }

    /// The value that resolves a firing rule.
    public var clearValue: Double { clear ?? value }

    /// A rule with `for: 1` and no `clear` keeps no state between periods.
    public var isStateless: Bool { forPeriods == 1 && clear == nil }

    /// Checks the values' consistency; decoding already calls it.
    public func validate() throws(ThresholdRuleError) {
        guard !name.isEmpty, name.utf8.count <= 128,
            name.unicodeScalars.allSatisfy({ $0.isASCII && (Self.isWordScalar($0) || ".:-".unicodeScalars.contains($0)) })
        else {
            throw ThresholdRuleError(field: "name", message: "must be 1 to 128 characters of A-Z a-z 0-9 _ . : -")
        }
        guard value.isFinite else { throw ThresholdRuleError(field: "value", message: "must be a finite number") }
        guard (1...Self.maxForPeriods).contains(forPeriods) else {
            throw ThresholdRuleError(field: "for", message: "must be a whole number of periods from 1 to \(Self.maxForPeriods)")
        }
        if let clear {
            guard clear.isFinite else { throw ThresholdRuleError(field: "clear", message: "must be a finite number") }
            if op.isUpward, clear > value {
                throw ThresholdRuleError(
                    field: "clear", message: "must not be above value (\(value)) for op \(op.rawValue): it is where the alert resolves")
            }
            if !op.isUpward, clear < value {
                throw ThresholdRuleError(
                    field: "clear", message: "must not be below value (\(value)) for op \(op.rawValue): it is where the alert resolves")
            }
        }
        switch scope {
        case .instance(let id), .user(let id):
            guard id.utf8.count <= 256, !id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else { throw ThresholdRuleError(field: "scope", message: "the id must be 1 to 256 characters, no control characters") }
        case .host, .instances: break
        }
        guard labels.count <= 32 else { throw ThresholdRuleError(field: "labels", message: "at most 32 labels") }
        for (key, text) in labels {
            guard Self.isLabelName(key) else {
                throw ThresholdRuleError(
                    field: "labels.\(key)", message: "a label name must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __")
            }
            guard text.utf8.count <= 1024 else {
                throw ThresholdRuleError(field: "labels.\(key)", message: "must be at most 1024 bytes")
            }
        }
    }

    /// Checks a whole rule set: each rule, and that names are unique.
    public static func validate(_ rules: [ThresholdRule]) throws(ThresholdRuleError) {
        var seen = Set<String>()
        for (index, rule) in rules.enumerated() {
            do {
                try rule.validate()
            } catch {
                throw error.within("[\(index)]")
            }
            guard seen.insert(rule.name).inserted else {
                throw ThresholdRuleError(field: "[\(index)].name", message: "duplicate rule name \"\(rule.name)\"")
            }
        }
    }

    private static func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_"
    }

    static func isLabelName(_ key: String) -> Bool {
        guard let first = key.unicodeScalars.first, !key.hasPrefix("__"), key.utf8.count <= 128 else { return false }
        return (isWordScalar(first) && !("0"..."9").contains(first)) && key.unicodeScalars.allSatisfy(isWordScalar)
    }

    // MARK: Codable

    private typealias Key = FieldKey

    public init(from decoder: any Decoder) throws {
        do {
            self = try Self.decodeFields(decoder)
        } catch let error as ThresholdRuleError {
            // Name the rule's place in a list: `[2].clear`.
            let path = decoder.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            let prefix = path.hasPrefix(".") ? String(path.dropFirst()) : path
            throw prefix.isEmpty ? error : error.within(prefix)
        }
    }

    private static func decodeFields(_ decoder: any Decoder) throws -> ThresholdRule {
        let container: KeyedDecodingContainer<Key>
        do {
            container = try decoder.container(keyedBy: Key.self)
        } catch {
            throw ThresholdRuleError(field: "", message: "a rule must be an object with \(Self.fields.joined(separator: ", "))")
        }
        for key in container.allKeys where !Self.fields.contains(key.stringValue) {
            throw ThresholdRuleError(
                field: key.stringValue, message: "unknown field; known: \(Self.fields.joined(separator: ", "))")
        }
        func required<T: Decodable>(_ type: T.Type, _ field: String, _ expected: String) throws -> T {
            guard container.contains(Key(field)) else { throw ThresholdRuleError(field: field, message: "is required") }
            do {
                return try container.decode(T.self, forKey: Key(field))
            } catch let error as ThresholdRuleError {
                throw error
            } catch {
                throw ThresholdRuleError(field: field, message: "must be \(expected)")
            }
        }
        func optional<T: Decodable>(_ type: T.Type, _ field: String, _ expected: String) throws -> T? {
            guard container.contains(Key(field)), try !container.decodeNil(forKey: Key(field)) else { return nil }
            return try required(type, field, expected)
        }
        let metricNames = ThresholdMetric.allCases.map(\.rawValue).joined(separator: ", ")
        let name = try required(String.self, "name", "a string")
        let metricText = try required(String.self, "metric", "a string")
        guard let metric = ThresholdMetric(rawValue: metricText) else {
            throw ThresholdRuleError(field: "metric", message: "unknown metric \"\(metricText)\"; known: \(metricNames)")
        }
        let opText = try required(String.self, "op", "a string")
        guard let op = ThresholdOperator(rawValue: opText) else {
            throw ThresholdRuleError(field: "op", message: "must be one of >, >=, <, <=")
        }
        let value = try required(Double.self, "value", "a number")
        let forPeriods = try optional(Int.self, "for", "a whole number of periods") ?? 1
        let clear = try optional(Double.self, "clear", "a number")
        let severityText = try optional(String.self, "severity", "a string") ?? ThresholdSeverity.warning.rawValue
        guard let severity = ThresholdSeverity(rawValue: severityText) else {
            throw ThresholdRuleError(field: "severity", message: "must be info, warning or critical")
        }
        let scope = try optional(ThresholdScope.self, "scope", "a string") ?? .host
        let labels = try optional([String: String].self, "labels", "an object of string values") ?? [:]
        return try ThresholdRule(
            name: name, metric: metric, op: op, value: value, forPeriods: forPeriods, clear: clear, severity: severity,
            scope: scope, labels: labels)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(name, forKey: Key("name"))
        try container.encode(metric, forKey: Key("metric"))
        try container.encode(op, forKey: Key("op"))
        try container.encode(value, forKey: Key("value"))
        try container.encode(forPeriods, forKey: Key("for"))
        try container.encodeIfPresent(clear, forKey: Key("clear"))
        try container.encode(severity, forKey: Key("severity"))
        try container.encode(scope, forKey: Key("scope"))
        try container.encode(labels, forKey: Key("labels"))
    }

    /// Decodes a JSON array of rules (the body of `PUT /thresholds` and the stored set), validated as a set.
    public static func decodeList(json data: Data) throws(ThresholdRuleError) -> [ThresholdRule] {
        let rules: [ThresholdRule]
        do {
            rules = try JSONDecoder().decode([ThresholdRule].self, from: data)
        } catch let error as ThresholdRuleError {
            throw error
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
            throw ThresholdRuleError(field: "", message: "not valid JSON: \(context.debugDescription)")
        } catch let error as DecodingError {
            throw Self.describe(error)
        } catch {
            throw ThresholdRuleError(field: "", message: "not valid JSON: \(error)")
        }
        try validate(rules)
        return rules
    }

    /// A decoder's error as a rule error naming the field.
    public static func describe(_ error: DecodingError) -> ThresholdRuleError {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context),
            .dataCorrupted(let context):
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            let field = path.hasPrefix(".") ? String(path.dropFirst()) : path
            if case .typeMismatch = error, context.codingPath.isEmpty {
                return ThresholdRuleError(field: "", message: "expected a JSON array of rules")
            }
            return ThresholdRuleError(field: field, message: context.debugDescription)
        @unknown default:
            return ThresholdRuleError(field: "", message: "\(error)")
        }
    }
}
