public import UsageModel

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
