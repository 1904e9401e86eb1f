public import UsageModel

/// Where a rule's state for one instance is kept: the rule's name and the instance.
public struct ThresholdKey: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var rule: String
    public var instanceID: String

    public init(rule: String, instanceID: String) {
        self.rule = rule
        self.instanceID = instanceID
    }

    public static func < (lhs: ThresholdKey, rhs: ThresholdKey) -> Bool {
        (lhs.rule, lhs.instanceID) < (rhs.rule, rhs.instanceID)
    }

    public var description: String { "\(rule)/\(instanceID)" }

    enum CodingKeys: String, CodingKey {
        case rule, instanceID = "instance_id"
    }
}

/// What a rule remembers about one instance between periods.
///
/// A rule at rest (not firing, condition not holding) has no state at all: the evaluator returns
/// nil for it, so the state map holds only pending and firing pairs. The state is Codable (snake
/// case) so it can be stored beside the checkpoint and survive a restart in the middle of a `for`
/// window or while firing.
public struct ThresholdState: Sendable, Equatable, Codable {
    /// The version of this Codable layout, for whoever stores it.
    public static let format = 1

    /// A firing alert: what it fired on, so it can be resolved (or re-announced after a restart)
    /// even once the rule has been removed.
    public struct Firing: Sendable, Equatable, Codable {
        /// The rule as last evaluated while firing. Edits that keep the alert (value, clear, for,
        /// scope) update it; edits that change the alert itself resolve it instead.
        public var rule: ThresholdRule
        /// The closed period whose value made the rule fire.
        public var period: Period
        /// The value that made it fire.
        public var value: Double
        /// Start of the first period of the run of consecutive periods that made it fire.
        public var since: Int64
        /// Whose instance it fired for, as of that period.
        public var userID: String
        public var orgID: String?

        public init(rule: ThresholdRule, period: Period, value: Double, since: Int64, userID: String, orgID: String?) {
            self.rule = rule
            self.period = period
            self.value = value
            self.since = since
            self.userID = userID
            self.orgID = orgID
        }

        enum CodingKeys: String, CodingKey {
            case rule, period, value, since, userID = "user_id", orgID = "org_id"
        }
    }

    /// The metric and comparison the count below was made with; a rule edited to another metric
    /// or operator starts counting again.
    public var metric: ThresholdMetric
    public var op: ThresholdOperator
    /// Closed periods in a row (the last one included) in which the rule's condition held
    /// (`op` against `value`), capped at `ThresholdRule.maxForPeriods`.
    public var consecutivePeriods: Int
    /// Start of the first period of that run; nil when the count is 0.
    public var runStart: Int64?
    /// The metric's value in the last period evaluated.
    public var lastValue: Double
    /// The last period evaluated; evaluating it again changes nothing.
    public var lastPeriod: Period
    /// The firing alert, boxed: a state is copied on every evaluation and the alert (a rule with
    /// strings and labels) changes only when it fires, resolves or is edited.
    /// Internal rather than private: the evaluator (ThresholdEvaluator.swift) advances it in place.
    var firingBox: FiringBox?

    /// Set while the rule fires.
    public var firing: Firing? {
        get { firingBox?.firing }
        set { firingBox = newValue.map(FiringBox.init) }
    }

    public init(
        metric: ThresholdMetric, op: ThresholdOperator, consecutivePeriods: Int, runStart: Int64?, firing: Firing?,
        lastValue: Double, lastPeriod: Period
    ) {
        self.metric = metric
        self.op = op
        self.consecutivePeriods = consecutivePeriods
        self.runStart = runStart
        self.lastValue = lastValue
        self.lastPeriod = lastPeriod
        self.firingBox = firing.map(FiringBox.init)
    }

    public var isFiring: Bool { firingBox != nil }

    /// When the firing alert's condition began (a period start); nil when not firing.
    public var firingSince: Int64? { firingBox?.firing.since }

    /// Moves the state one period on: the count, run start and last value and period replaced,
    /// the firing alert kept.
    mutating func advance(metric: ThresholdMetric, op: ThresholdOperator, count: Int, runStart: Int64?, value: Double, period: Period) {
        self.metric = metric
        self.op = op
        consecutivePeriods = count
        self.runStart = runStart
        lastValue = value
        lastPeriod = period
    }

    public static func == (lhs: ThresholdState, rhs: ThresholdState) -> Bool {
        lhs.metric == rhs.metric && lhs.op == rhs.op && lhs.consecutivePeriods == rhs.consecutivePeriods
            && lhs.runStart == rhs.runStart && lhs.lastValue == rhs.lastValue
            && lhs.lastPeriod == rhs.lastPeriod
            && (lhs.firingBox === rhs.firingBox || lhs.firingBox?.firing == rhs.firingBox?.firing)
    }

    enum CodingKeys: String, CodingKey {
        case metric, op, consecutivePeriods = "consecutive_periods", runStart = "run_start", firing
        case lastValue = "last_value", lastPeriod = "last_period"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let count = try container.decode(Int.self, forKey: .consecutivePeriods)
        guard (0...ThresholdRule.maxForPeriods).contains(count) else {
            throw DecodingError.dataCorruptedError(
                forKey: .consecutivePeriods, in: container,
                debugDescription: "must be 0 to \(ThresholdRule.maxForPeriods), not \(count)")
        }
        self.init(
            metric: try container.decode(ThresholdMetric.self, forKey: .metric),
            op: try container.decode(ThresholdOperator.self, forKey: .op),
            consecutivePeriods: count,
            runStart: try container.decodeIfPresent(Int64.self, forKey: .runStart),
            firing: try container.decodeIfPresent(Firing.self, forKey: .firing),
            lastValue: try container.decode(Double.self, forKey: .lastValue),
            lastPeriod: try container.decode(Period.self, forKey: .lastPeriod))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(metric, forKey: .metric)
        try container.encode(op, forKey: .op)
        try container.encode(consecutivePeriods, forKey: .consecutivePeriods)
        try container.encodeIfPresent(runStart, forKey: .runStart)
        try container.encodeIfPresent(firing, forKey: .firing)
        try container.encode(lastValue, forKey: .lastValue)
        try container.encode(lastPeriod, forKey: .lastPeriod)
    }
}

/// An immutable box for a firing alert, shared by the states that carry it.
final class FiringBox: Sendable {
    let firing: ThresholdState.Firing
    init(_ firing: ThresholdState.Firing) { self.firing = firing }
}
