public import UsageModel

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
