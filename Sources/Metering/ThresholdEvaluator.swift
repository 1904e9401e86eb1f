public import UsageModel

/// One metered instance over one closed period, as threshold rules see it.
///
/// `values` holds the period's `UsageEvent` metrics and the gauges sampled at its close. A metric
/// absent from it (no GPU, no filesystem gauge for a VM) means rules on that metric do not apply to
/// this instance in this period: their state is kept unchanged, neither advanced nor reset. A
/// non-finite value (NaN, ±∞) counts as absent.
public struct ThresholdSubject: Sendable, Equatable {
    public var instanceID: String
    public var userID: String
    public var orgID: String?
    /// The host itself in host mode (`ThresholdScope.host`).
    public var isHost: Bool
    public var period: Period
    /// Kept in a flat table by metric: every rule looks one up, and a table read costs a
    /// fraction of a dictionary's hashing.
    var readings: ThresholdReadings

    public init(
        instanceID: String, userID: String, orgID: String? = nil, isHost: Bool, period: Period,
        values: [ThresholdMetric: Double]
    ) {
        self.instanceID = instanceID
        self.userID = userID
        self.orgID = orgID
        self.isHost = isHost
        self.period = period
        self.readings = ThresholdReadings(values)
    }

    /// The period's metric values and gauges.
    public var values: [ThresholdMetric: Double] {
        get { readings.dictionary }
        set { readings = ThresholdReadings(newValue) }
    }

    /// The value of `metric` a rule can be checked against: nil when absent or not finite.
    public func value(of metric: ThresholdMetric) -> Double? {
        guard let value = readings[metric], value.isFinite else { return nil }
        return value
    }

    /// The subject of a usage event: its identity, period and metrics, plus `gauges` (which win
    /// over a usage metric of the same name; there is none today).
    public init(event: UsageEvent, isHost: Bool, gauges: [ThresholdMetric: Double] = [:]) {
        var values = Self.values(of: event.metrics)
        values.merge(gauges) { _, gauge in gauge }
        self.init(
            instanceID: event.instanceID, userID: event.userID, orgID: event.orgID, isHost: isHost, period: event.period,
            values: values)
    }

    /// A period's usage metrics by the threshold metric of the same name.
    public static func values(of metrics: UsageMetrics) -> [ThresholdMetric: Double] {
        [
            .cpuSeconds: Double(metrics.cpuSeconds), .cpuPercentAvg: metrics.cpuPercentAvg, .memoryGB: metrics.memoryGB,
            .memoryPercent: metrics.memoryPercent, .storageGB: metrics.storageGB,
            .networkEgressMB: metrics.networkEgressMB, .networkIngressMB: metrics.networkIngressMB,
            .gpuSeconds: Double(metrics.gpuSeconds),
        ]
    }
}

/// Metric values in a table indexed by metric, with a bit per metric for presence.
struct ThresholdReadings: Sendable, Equatable {
    private var present: UInt32 = 0
    private var table: [Double]

    init(_ values: [ThresholdMetric: Double]) {
        table = Array(repeating: 0, count: ThresholdMetric.allCases.count)
        for (metric, value) in values {
            table[metric.slot] = value
            present |= 1 << UInt32(metric.slot)
        }
    }

    subscript(metric: ThresholdMetric) -> Double? {
        let slot = metric.slot
        return present & (1 << UInt32(slot)) == 0 ? nil : table[slot]
    }

    var dictionary: [ThresholdMetric: Double] {
        var values: [ThresholdMetric: Double] = [:]
        for metric in ThresholdMetric.allCases { if let value = self[metric] { values[metric] = value } }
        return values
    }
}

extension ThresholdMetric {
    /// The metric's place in `ThresholdReadings`; a new metric needs a case here (the switch is
    /// exhaustive, so the compiler says so) and must stay below 32.
    var slot: Int {
        switch self {
        case .cpuSeconds: 0
        case .cpuPercentAvg: 1
        case .memoryGB: 2
        case .memoryPercent: 3
        case .storageGB: 4
        case .networkEgressMB: 5
        case .networkIngressMB: 6
        case .gpuSeconds: 7
        case .filesystemUsedPercent: 8
        case .gpuUtilizationPercent: 9
        case .gpuMemoryPercent: 10
        case .gpuTemperatureCelsius: 11
        case .loadPerCPU: 12
        case .outboxPendingEvents: 13
        }
    }
}

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
    fileprivate var firingBox: FiringBox?

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

/// A rule started or stopped firing for an instance: what becomes a `ThresholdEvent`.
public struct ThresholdTransition: Sendable, Equatable {
    /// Why it happened, for logs; not part of the event.
    public enum Reason: String, Sendable, CaseIterable {
        /// The condition held for `for` periods in a row.
        case crossed
        /// The value went past the clear value.
        case cleared
        /// The rule is no longer configured.
        case ruleRemoved = "rule_removed"
        /// The rule was edited in a way that makes it another alert (metric, op, severity, labels).
        case ruleChanged = "rule_changed"
        /// The rule was edited so that its scope no longer covers the instance.
        case outOfScope = "out_of_scope"
        /// The instance is gone (`ThresholdEvaluator.retire`).
        case instanceRetired = "instance_retired"
    }

    public var state: ThresholdEvent.State
    public var reason: Reason
    /// The rule as it fired (for a resolve: as last evaluated while firing).
    public var rule: ThresholdRule
    public var instanceID: String
    public var userID: String
    public var orgID: String?
    /// The period whose evaluation made the transition.
    public var period: Period
    public var value: Double
    /// The rule's `value` when firing, its clear value when resolved.
    public var threshold: Double
    /// Start of the first period of the run that made it fire.
    public var since: Int64

    public init(
        state: ThresholdEvent.State, reason: Reason, rule: ThresholdRule, instanceID: String, userID: String,
        orgID: String?, period: Period, value: Double, threshold: Double, since: Int64
    ) {
        self.state = state
        self.reason = reason
        self.rule = rule
        self.instanceID = instanceID
        self.userID = userID
        self.orgID = orgID
        self.period = period
        self.value = value
        self.threshold = threshold
        self.since = since
    }

    public var key: ThresholdKey { ThresholdKey(rule: rule.name, instanceID: instanceID) }

    /// The wire event of this transition, made at `timestamp` (unix seconds) on `hostID`.
    public func event(hostID: String, timestamp: Int64) -> ThresholdEvent {
        ThresholdEvent(
            hostID: hostID, instanceID: instanceID, userID: userID, orgID: orgID, state: state, rule: rule.name,
            severity: rule.severity.rawValue, metric: rule.metric.rawValue, op: rule.op.rawValue, value: value,
            threshold: threshold, labels: rule.labels, period: period, timestamp: timestamp)
    }
}

/// The result of evaluating one rule for one instance.
public struct ThresholdStep: Sendable, Equatable {
    /// The state to keep; nil when the rule is at rest for the instance and nothing needs keeping.
    public var state: ThresholdState?
    public var transition: ThresholdTransition?

    public init(state: ThresholdState?, transition: ThresholdTransition?) {
        self.state = state
        self.transition = transition
    }
}

/// The result of evaluating a rule set over a round of subjects.
public struct ThresholdRound: Sendable, Equatable {
    /// Every pending or firing (rule, instance) pair after the round.
    public var states: [ThresholdKey: ThresholdState]
    /// Firings and resolves, in a deterministic order: removed rules' resolves by key, then by
    /// subject order and, within a subject, rule order.
    public var transitions: [ThresholdTransition]

    public init(states: [ThresholdKey: ThresholdState], transitions: [ThresholdTransition]) {
        self.states = states
        self.transitions = transitions
    }
}

/// Threshold evaluation: pure and total, time is the subject's period.
///
/// Semantics of one rule for one instance, period by period:
/// - The condition holds when `op` holds between the metric's value and the rule's `value`.
/// - A rule that is not firing fires in the period that makes the condition hold for `for`
///   consecutive periods. Periods count as consecutive when evaluated one after another for the
///   instance: a gap (agent down, instance stopped) neither breaks nor extends a run, and a period
///   in which the metric is absent is skipped.
/// - A firing rule resolves in the first period whose value is past the clear value, that is, in
///   which `op` no longer holds between the value and `clear` (`clearValue`: `clear`, or `value`
///   without one). With `>` and clear 80 it resolves at a value ≤ 80; with `>=` at < 80; with `<`
///   and clear 20 at ≥ 20; with `<=` at > 20. Without `clear` this is exactly "the condition no
///   longer holds". Values between `clear` and `value` keep it firing: that band is the
///   hysteresis that stops a metric wobbling around `value` from flapping. Resolving takes one
///   period; there is no `for` on the way down.
/// - A rule with `for: 1` and no `clear` is stateless: whether it fires depends on the current
///   value alone. Its state only remembers that it fires, so the firing and the resolve are each
///   reported once.
/// - Evaluating the period that was evaluated last again changes nothing and reports nothing, so
///   replaying a period after a crash cannot count it twice.
public enum ThresholdEvaluator {
    /// Evaluates `rule` for `subject`'s closed period against the state left by the previous
    /// period. Scope is not checked here (`evaluate(rules:subjects:states:)` does).
    ///
    /// A firing state whose rule was edited into another alert (metric, op, severity or labels
    /// changed) is resolved with reason `ruleChanged`, and the edited rule starts from rest with
    /// the next period. A pending count made with another metric or op starts again.
    public static func evaluate(_ rule: ThresholdRule, subject: ThresholdSubject, previous: ThresholdState?) -> ThresholdStep {
        var state = previous
        let transition = advance(rule, subject: subject, state: &state)
        return ThresholdStep(state: state, transition: transition)
    }

    /// `evaluate(_:subject:previous:)` in place: the state is updated where it lies (an entry
    /// of the round's map), which saves copying it in and out on every evaluation.
    static func advance(_ rule: ThresholdRule, subject: ThresholdSubject, state: inout ThresholdState?)
        -> ThresholdTransition?
    {
        guard let value = subject.value(of: rule.metric) else { return nil }
        var count = 0
        var runStart: Int64?
        // The firing alert is read through its box, never copied out, on this hot path.
        let box = state?.firingBox
        if let previous = state {
            if previous.lastPeriod == subject.period { return nil }
            if let box, !box.firing.rule.isSameAlert(as: rule) {
                state = nil
                return ThresholdTransition(
                    state: .resolved, reason: .ruleChanged, rule: box.firing.rule, instanceID: subject.instanceID,
                    userID: subject.userID, orgID: subject.orgID, period: subject.period,
                    value: subject.value(of: box.firing.rule.metric) ?? previous.lastValue,
                    threshold: box.firing.rule.clearValue, since: box.firing.since)
            }
            // A pending count made with another metric or op starts again.
            if box != nil || (previous.metric == rule.metric && previous.op == rule.op) {
                count = previous.consecutivePeriods
                runStart = previous.runStart
            }
        }

        let holds = rule.op.holds(value, rule.value)
        count = holds ? min(count + 1, ThresholdRule.maxForPeriods) : 0
        runStart = holds ? (runStart ?? subject.period.start) : nil

        if let box {
            guard rule.op.holds(value, rule.clearValue) else {
                // Past the clear value, which is never on the firing side of `value`: the condition
                // does not hold either, so nothing is left to keep.
                state = nil
                return ThresholdTransition(
                    state: .resolved, reason: .cleared, rule: rule, instanceID: subject.instanceID,
                    userID: subject.userID, orgID: subject.orgID, period: subject.period, value: value,
                    threshold: rule.clearValue, since: box.firing.since)
            }
            state!.advance(metric: rule.metric, op: rule.op, count: count, runStart: runStart, value: value, period: subject.period)
            if box.firing.rule != rule {
                var edited = box.firing
                edited.rule = rule
                state!.firing = edited
            }
            return nil
        }
        guard holds, let since = runStart else {
            state = nil
            return nil
        }
        guard count >= rule.forPeriods else {
            if state == nil {
                state = ThresholdState(
                    metric: rule.metric, op: rule.op, consecutivePeriods: count, runStart: since, firing: nil,
                    lastValue: value, lastPeriod: subject.period)
            } else {
                state!.advance(metric: rule.metric, op: rule.op, count: count, runStart: since, value: value, period: subject.period)
            }
            return nil
        }
        state = ThresholdState(
            metric: rule.metric, op: rule.op, consecutivePeriods: count, runStart: since,
            firing: ThresholdState.Firing(
                rule: rule, period: subject.period, value: value, since: since, userID: subject.userID,
                orgID: subject.orgID),
            lastValue: value, lastPeriod: subject.period)
        return ThresholdTransition(
            state: .firing, reason: .crossed, rule: rule, instanceID: subject.instanceID, userID: subject.userID,
            orgID: subject.orgID, period: subject.period, value: value, threshold: rule.value, since: since)
    }

    /// Evaluates every rule over every subject in its scope, from the states of the previous round.
    ///
    /// - A (rule, instance) pair with a state whose rule is no longer in `rules` is dropped; if it
    ///   was firing it resolves (reason `ruleRemoved`), so no alert is left hanging downstream.
    /// - A pair whose subject is in this round but no longer in the rule's scope is dropped the
    ///   same way (reason `outOfScope`).
    /// - A pair whose instance is not among `subjects` (it closed no period this round) is kept
    ///   as it is; `retire(instanceID:states:)` drops a gone instance's states.
    ///
    /// A removed rule's resolve carries the subject's period when the instance is in this round,
    /// else the last period evaluated, and the metric's current value when the subject has it,
    /// else the last value. Rule names must be unique (`ThresholdRule.validate(_:)`), as must
    /// subjects' instance ids.
    public static func evaluate(
        rules: [ThresholdRule], subjects: [ThresholdSubject], states: [ThresholdKey: ThresholdState]
    ) -> ThresholdRound {
        var next = states
        var transitions: [ThresholdTransition] = []

        if !states.isEmpty {
            let names = Set(rules.map(\.name))
            let removed = states.filter { !names.contains($0.key.rule) }
            if !removed.isEmpty {
                let byInstance = Dictionary(subjects.map { ($0.instanceID, $0) }, uniquingKeysWith: { _, last in last })
                for (key, state) in removed.sorted(by: { $0.key < $1.key }) {
                    next[key] = nil
                    if let resolve = resolution(of: state, key: key, reason: .ruleRemoved, subject: byInstance[key.instanceID]) {
                        transitions.append(resolve)
                    }
                }
            }
        }

        for subject in subjects {
            for index in rules.indices {
                let rule = rules[index]
                let key = ThresholdKey(rule: rule.name, instanceID: subject.instanceID)
                guard rule.scope.contains(instanceID: subject.instanceID, userID: subject.userID, isHost: subject.isHost)
                else {
                    if let previous = next.removeValue(forKey: key),
                        let resolve = resolution(of: previous, key: key, reason: .outOfScope, subject: subject)
                    {
                        transitions.append(resolve)
                    }
                    continue
                }
                // One hash lookup: the entry is read and written in place (an entry that stays
                // nil is never inserted). Each key is met once per round, so `next` still holds
                // the previous round's state for it.
                if let transition = advance(rule, subject: subject, state: &next[key]) { transitions.append(transition) }
            }
        }
        return ThresholdRound(states: next, transitions: transitions)
    }

    /// Drops every state of an instance that is gone (deleted, moved to another host), resolving
    /// its firing alerts (reason `instanceRetired`) with their last period and value.
    public static func retire(instanceID: String, states: [ThresholdKey: ThresholdState]) -> ThresholdRound {
        var next = states
        var transitions: [ThresholdTransition] = []
        for (key, state) in states.filter({ $0.key.instanceID == instanceID }).sorted(by: { $0.key < $1.key }) {
            next[key] = nil
            if let resolve = resolution(of: state, key: key, reason: .instanceRetired, subject: nil) {
                transitions.append(resolve)
            }
        }
        return ThresholdRound(states: next, transitions: transitions)
    }

    /// The firing events of every firing state, by key: what an Alertmanager notifier is rebuilt
    /// from after a restart. Each has the id of the original firing event (same rule, instance
    /// and firing period); the value and threshold are as it fired, and `timestamp` is now.
    public static func firingEvents(
        states: [ThresholdKey: ThresholdState], hostID: String, timestamp: Int64
    ) -> [ThresholdEvent] {
        states.sorted(by: { $0.key < $1.key }).compactMap { key, state in
            guard let firing = state.firing else { return nil }
            return ThresholdTransition(
                state: .firing, reason: .crossed, rule: firing.rule, instanceID: key.instanceID, userID: firing.userID,
                orgID: firing.orgID, period: firing.period, value: firing.value, threshold: firing.rule.value,
                since: firing.since
            ).event(hostID: hostID, timestamp: timestamp)
        }
    }

    /// The resolve of a firing state that is being dropped; nil when it was not firing.
    static func resolution(
        of state: ThresholdState, key: ThresholdKey, reason: ThresholdTransition.Reason, subject: ThresholdSubject?
    ) -> ThresholdTransition? {
        guard let firing = state.firing else { return nil }
        let current = subject?.value(of: firing.rule.metric)
        return ThresholdTransition(
            state: .resolved, reason: reason, rule: firing.rule, instanceID: key.instanceID,
            userID: subject?.userID ?? firing.userID, orgID: subject.map(\.orgID) ?? firing.orgID,
            period: subject?.period ?? state.lastPeriod, value: current ?? state.lastValue,
            threshold: firing.rule.clearValue, since: firing.since)
    }
}

extension ThresholdRule {
    /// Whether an alert of `self` and one of `other` are the same alert downstream: same metric
    /// and comparison, and the same severity and labels (which Alertmanager identifies it by).
    /// `value`, `clear`, `for` and `scope` may differ.
    func isSameAlert(as other: ThresholdRule) -> Bool {
        name == other.name && metric == other.metric && op == other.op && severity == other.severity
            && labels == other.labels
    }
}
