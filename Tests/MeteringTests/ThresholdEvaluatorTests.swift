import Foundation
import PropertyBased
import Testing
import TestSupport
import UsageModel

@testable import Metering

/// The threshold evaluator: tables of value sequences and the transitions they must give, per
/// operator, `for` window, clear value, absent metric; the rule-set round (scopes, removed and
/// edited rules); no flapping; restarts through the Codable state.
@Suite struct ThresholdEvaluatorTests {
    // MARK: Helpers

    static func rule(
        _ op: ThresholdOperator, _ value: Double, for forPeriods: Int = 1, clear: Double? = nil,
        metric: ThresholdMetric = .cpuPercentAvg, name: String = "cpu-high", severity: ThresholdSeverity = .warning,
        scope: ThresholdScope = .instances, labels: [String: String] = [:]
    ) -> ThresholdRule {
        do {
            return try ThresholdRule(
                name: name, metric: metric, op: op, value: value, forPeriods: forPeriods, clear: clear, severity: severity,
                scope: scope, labels: labels)
        } catch {
            fatalError("bad test rule: \(error)")
        }
    }

    static func period(_ index: Int) -> Period {
        Period(start: 1_763_726_400 + Int64(index) * 30, end: 1_763_726_430 + Int64(index) * 30)
    }

    static func subject(
        _ value: Double?, at index: Int, metric: ThresholdMetric = .cpuPercentAvg, instance: String = "vm-1",
        user: String = "u-1", isHost: Bool = false
    ) -> ThresholdSubject {
        ThresholdSubject(
            instanceID: instance, userID: user, orgID: nil, isHost: isHost, period: period(index),
            values: value.map { [metric: $0] } ?? [:])
    }

    /// Runs `rule` over `values` (nil: metric absent), one period each, from no state; returns one
    /// character per period: F fired, R resolved, . nothing, and the final state.
    static func trace(_ rule: ThresholdRule, _ values: [Double?], from start: ThresholdState? = nil)
        -> (marks: String, state: ThresholdState?, transitions: [ThresholdTransition])
    {
        var state = start
        var marks = ""
        var transitions: [ThresholdTransition] = []
        for (index, value) in values.enumerated() {
            let step = ThresholdEvaluator.evaluate(rule, subject: subject(value, at: index, metric: rule.metric), previous: state)
            state = step.state
            switch step.transition?.state {
            case .firing: marks.append("F")
            case .resolved: marks.append("R")
            case nil: marks.append(".")
            }
            if let transition = step.transition { transitions.append(transition) }
        }
        return (marks, state, transitions)
    }

    // MARK: Tables

    struct Case: CustomTestStringConvertible, Sendable {
        let what: String
        let rule: ThresholdRule
        let values: [Double?]
        let expected: String
        var testDescription: String { what }
    }

    static let operatorCases: [Case] = [
        Case(what: "> fires only above, resolves at or below", rule: rule(.greater, 90), values: [89, 90, 91, 95, 90, 89], expected: "..F.R."),
        Case(what: ">= fires at the value", rule: rule(.greaterOrEqual, 90), values: [89, 90, 91, 89.9], expected: ".F.R"),
        Case(what: "< fires only below, resolves at or above", rule: rule(.less, 10), values: [11, 10, 9, 9, 10], expected: "..F.R"),
        Case(what: "<= fires at the value", rule: rule(.lessOrEqual, 10), values: [11, 10, 9, 10.1], expected: ".F.R"),
        Case(what: "negative thresholds", rule: rule(.less, -5), values: [0, -5, -5.5, -4], expected: "..FR"),
        Case(what: "never crossing gives nothing", rule: rule(.greater, 90), values: [0, 50, 89.999, 90], expected: "...."),
        Case(what: "always above fires once", rule: rule(.greater, 90), values: [91, 92, 93, 99, 100], expected: "F...."),
    ]

    static let forCases: [Case] = [
        Case(
            what: "for 3: a break restarts the count", rule: rule(.greater, 90, for: 3),
            values: [95, 95, 89, 95, 95, 95, 95, 80], expected: ".....F.R"),
        Case(what: "for 2 with <", rule: rule(.less, 10, for: 2), values: [5, 20, 5, 5, 5, 20], expected: "...F.R"),
        Case(what: "for 3 never reached", rule: rule(.greaterOrEqual, 90, for: 3), values: [90, 90, 10, 90, 90, 10], expected: "......"),
        Case(what: "for 1 is immediate", rule: rule(.greater, 90, for: 1), values: [95, 10], expected: "FR"),
        Case(what: "for 4 exactly", rule: rule(.lessOrEqual, 1, for: 4), values: [1, 1, 1, 1, 2], expected: "...FR"),
    ]

    static let clearCases: [Case] = [
        Case(
            what: "> 90 clear 80: the band keeps it, 80 resolves", rule: rule(.greater, 90, clear: 80),
            values: [95, 85, 81, 80.5, 80, 95], expected: "F...RF"),
        Case(what: ">= 90 clear 80: 80 keeps it, below resolves", rule: rule(.greaterOrEqual, 90, clear: 80), values: [90, 80, 79.9], expected: "F.R"),
        Case(what: "< 10 clear 20: 20 resolves", rule: rule(.less, 10, clear: 20), values: [5, 15, 19.9, 20], expected: "F..R"),
        Case(what: "<= 10 clear 20: above 20 resolves", rule: rule(.lessOrEqual, 10, clear: 20), values: [10, 20, 20.1], expected: "F.R"),
        Case(what: "clear equal to value is no hysteresis", rule: rule(.greater, 90, clear: 90), values: [95, 90], expected: "FR"),
        Case(
            what: "for 2 and clear 70: the band resets the count but not the alert", rule: rule(.greater, 90, for: 2, clear: 70),
            values: [95, 80, 95, 95, 80, 75, 95, 70, 95], expected: "...F...R."),
        Case(
            what: "resolving takes one period, no for on the way down", rule: rule(.greater, 90, for: 3, clear: 50),
            values: [91, 91, 91, 49, 91, 91, 91], expected: "..FR..F"),
    ]

    static let absentCases: [Case] = [
        Case(
            what: "an absent metric neither advances nor resets the count", rule: rule(.greater, 90, for: 3),
            values: [95, nil, 95, nil, nil, 95], expected: ".....F"),
        Case(what: "an absent metric keeps a firing alert", rule: rule(.greater, 90), values: [95, nil, nil, 50], expected: "F..R"),
        Case(what: "NaN counts as absent", rule: rule(.greater, 90), values: [95, .nan, 50], expected: "F.R"),
        Case(what: "infinity counts as absent", rule: rule(.greater, 90, for: 2), values: [95, .infinity, 95, -.infinity, 10], expected: "..F.R"),
        Case(what: "absent from the start is no state", rule: rule(.less, 10), values: [nil, nil, 5], expected: "..F"),
    ]

    @Test(arguments: operatorCases + forCases + clearCases + absentCases)
    func sequences(_ example: Case) {
        let result = Self.trace(example.rule, example.values)
        #expect(result.marks == example.expected, "\(example.what): values \(example.values)")
        // After the sequence the rule fires exactly when the last transition was a firing.
        #expect(result.state?.isFiring ?? false == (result.marks.last(where: { $0 != "." }) == "F"))
    }

    @Test func transitionsCarryValueThresholdAndSince() throws {
        let rule = Self.rule(.greater, 90, for: 3, clear: 70, labels: ["team": "ops"])
        let result = Self.trace(rule, [80, 91, 92, 93, 75, 69.5])
        #expect(result.marks == "...F.R")
        let fire = try #require(result.transitions.first)
        #expect(fire.state == .firing && fire.reason == .crossed)
        #expect(fire.value == 93 && fire.threshold == 90)
        #expect(fire.period == Self.period(3))
        // The condition began with the period of 91.
        #expect(fire.since == Self.period(1).start)
        let resolve = try #require(result.transitions.last)
        #expect(resolve.state == .resolved && resolve.reason == .cleared)
        #expect(resolve.value == 69.5 && resolve.threshold == 70)
        #expect(resolve.since == Self.period(1).start)
        #expect(resolve.period == Self.period(5))
        #expect(result.state == nil, "a resolved rule keeps nothing")

        let event = fire.event(hostID: "host-7", timestamp: 1_763_726_600)
        #expect(event.rule == "cpu-high" && event.metric == "cpu_percent_avg" && event.op == ">")
        #expect(event.severity == "warning" && event.labels == ["team": "ops"])
        #expect(event.instanceID == "vm-1" && event.userID == "u-1" && event.hostID == "host-7")
        #expect(event.value == 93 && event.threshold == 90 && event.period == Self.period(3))
        #expect(
            event.eventID
                == ThresholdEvent.eventID(hostID: "host-7", rule: "cpu-high", instanceID: "vm-1", state: .firing, period: Self.period(3)))
        let resolved = resolve.event(hostID: "host-7", timestamp: 1_763_726_700)
        #expect(resolved.state == .resolved && resolved.threshold == 70 && resolved.eventID != event.eventID)
    }

    @Test func pendingStateCountsAndRemembersTheRunStart() throws {
        let rule = Self.rule(.greater, 90, for: 5)
        let result = Self.trace(rule, [50, 95, 96, 97])
        let state = try #require(result.state)
        #expect(state.consecutivePeriods == 3)
        #expect(state.runStart == Self.period(1).start)
        #expect(!state.isFiring && state.firingSince == nil)
        #expect(state.lastValue == 97 && state.lastPeriod == Self.period(3))
        // Below the value a non-firing rule is at rest: no state.
        #expect(Self.trace(rule, [95, 50]).state == nil)
    }

    // MARK: Stateless rules

    /// `for: 1` and no clear: whether it fires depends on the current value alone, from any
    /// previous state; the state only makes each transition reported once.
    @Test func forOneWithoutClearIsStateless() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...Int.max)) { seed in
            var random = SplitMix64(state: UInt64(seed))
            let op = ThresholdOperator.allCases.randomElement(using: &random)!
            let rule = Self.rule(op, 50)
            #expect(rule.isStateless)
            var state: ThresholdState?
            for index in 0..<60 {
                let value = Double(Int.random(in: 40...60, using: &random))
                let wasFiring = state?.isFiring ?? false
                let step = ThresholdEvaluator.evaluate(rule, subject: Self.subject(value, at: index), previous: state)
                let firing = step.state?.isFiring ?? false
                #expect(firing == op.holds(value, 50), "seed \(seed) period \(index): \(value) \(op.rawValue) 50")
                // A transition exactly when the status changes, never twice in a row.
                #expect((step.transition != nil) == (firing != wasFiring))
                state = step.state
            }
        }
    }

    // MARK: No flapping

    /// A metric wobbling around the value: with clear set, one firing and one resolved over
    /// hundreds of periods; without it, the same series flaps.
    @Test(arguments: [1, 3])
    func hysteresisStopsFlapping(forPeriods: Int) async {
        await propertyCheck(count: 50, input: Gen.int(in: 0...Int.max)) { seed in
            var random = SplitMix64(state: UInt64(seed))
            // Calm, then 500 periods wobbling 85…95 around 90, then calm again.
            var values: [Double?] = Array(repeating: 40, count: 5)
            // The wobble starts with a spike over the value held long enough to fire, then wobbles.
            values += Array(repeating: 95, count: forPeriods)
            for _ in 0..<500 { values.append(Double.random(in: 85...95, using: &random)) }
            values += Array(repeating: 40, count: 5)

            let damped = Self.trace(Self.rule(.greater, 90, for: forPeriods, clear: 80), values)
            #expect(damped.marks.filter { $0 == "F" }.count == 1, "seed \(seed): \(damped.marks)")
            #expect(damped.marks.filter { $0 == "R" }.count == 1, "seed \(seed)")
            #expect(damped.marks.firstIndex(of: "R")! > damped.marks.firstIndex(of: "F")!)
            #expect(damped.state == nil)

            let undamped = Self.trace(Self.rule(.greater, 90, for: forPeriods), values)
            #expect(undamped.transitions.count > 20, "seed \(seed): the series must flap without clear for this test to mean anything")
        }
    }

    @Test func downwardHysteresisDoesNotFlapEither() {
        // Free disk below 10 %, wobbling 8…12, with clear 15.
        let values: [Double?] = (0..<400).map { 10 + 2 * sin(Double($0)) } + [20]
        let damped = Self.trace(Self.rule(.less, 10, clear: 15), values)
        #expect(damped.marks.filter { $0 != "." }.count == 2, "\(damped.marks)")
        let undamped = Self.trace(Self.rule(.less, 10), values)
        #expect(undamped.transitions.count > 50)
    }

    // MARK: Restarts

    static func roundTrip(_ state: ThresholdState?) throws -> ThresholdState? {
        guard let state else { return nil }
        return try JSONDecoder().decode(ThresholdState.self, from: try JSONEncoder().encode(state))
    }

    @Test func restartInTheMiddleOfAForWindowKeepsTheCount() throws {
        let rule = Self.rule(.greater, 90, for: 5, clear: 80)
        let values: [Double?] = [95, 95, 95, 95, 95, 85, 79, 95]
        let straight = Self.trace(rule, values)
        #expect(straight.marks == "....F.R.")

        // Stop after every period, store the state as JSON, start again from it.
        for cut in 1..<values.count {
            let before = Self.trace(rule, Array(values[..<cut]))
            let restored = try Self.roundTrip(before.state)
            #expect(restored == before.state, "cut \(cut): the state did not survive JSON")
            var state = restored
            var marks = before.marks
            for index in cut..<values.count {
                let step = ThresholdEvaluator.evaluate(rule, subject: Self.subject(values[index], at: index), previous: state)
                state = step.state
                marks.append(step.transition.map { $0.state == .firing ? "F" : "R" } ?? ".")
            }
            #expect(marks == straight.marks, "restart after period \(cut)")
            #expect(state == straight.state)
        }
    }

    @Test func storedStateIsSnakeCaseJSON() throws {
        let rule = Self.rule(.greater, 90, for: 2, labels: ["team": "ops"])
        let state = try #require(Self.trace(rule, [95, 96]).state)
        let object = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(state)) as? [String: Any])
        #expect(Set(object.keys) == ["metric", "op", "consecutive_periods", "run_start", "firing", "last_value", "last_period"])
        #expect(object["consecutive_periods"] as? Int == 2)
        let firing = try #require(object["firing"] as? [String: Any])
        // org_id is left out when nil.
        #expect(Set(firing.keys) == ["rule", "period", "value", "since", "user_id"])
        #expect((firing["rule"] as? [String: Any])?["for"] as? Int == 2)
    }

    @Test(arguments: [-1, ThresholdRule.maxForPeriods + 1])
    func storedStateWithAnImpossibleCountIsRefused(count: Int) throws {
        let state = try #require(Self.trace(Self.rule(.greater, 90, for: 5), [95]).state)
        var object = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(state)) as? [String: Any])
        object["consecutive_periods"] = count
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ThresholdState.self, from: try JSONSerialization.data(withJSONObject: object))
        }
    }

    @Test func subjectValuesRoundTripEveryMetric() {
        var values: [ThresholdMetric: Double] = [:]
        for (index, metric) in ThresholdMetric.allCases.enumerated() { values[metric] = Double(index) - 3.5 }
        var subject = ThresholdSubject(instanceID: "vm-1", userID: "u-1", isHost: false, period: Self.period(0), values: values)
        #expect(subject.values == values)
        for metric in ThresholdMetric.allCases { #expect(subject.value(of: metric) == values[metric]) }
        subject.values = [.gpuSeconds: 7, .loadPerCPU: .nan]
        #expect(subject.values.count == 2 && subject.values[.gpuSeconds] == 7)
        #expect(subject.value(of: .loadPerCPU) == nil, "a NaN is kept but never checked")
        #expect(subject.value(of: .cpuSeconds) == nil)
        let event = UsageEvent(
            hostID: "h", instanceID: "vm-1", userID: "u-1", orgID: "o", period: Self.period(0),
            metrics: UsageMetrics(cpuSeconds: 12, cpuPercentAvg: 41.7, gpuSeconds: 3), timestamp: 0)
        let fromEvent = ThresholdSubject(event: event, isHost: false, gauges: [.filesystemUsedPercent: 91])
        #expect(fromEvent.value(of: .cpuSeconds) == 12 && fromEvent.value(of: .cpuPercentAvg) == 41.7)
        #expect(fromEvent.value(of: .gpuSeconds) == 3 && fromEvent.value(of: .filesystemUsedPercent) == 91)
        #expect(fromEvent.value(of: .gpuUtilizationPercent) == nil)
        #expect(fromEvent.orgID == "o" && fromEvent.period == Self.period(0))
    }

    @Test func evaluatingTheSamePeriodAgainChangesNothing() throws {
        let rule = Self.rule(.greater, 90, for: 2)
        let first = ThresholdEvaluator.evaluate(rule, subject: Self.subject(95, at: 0), previous: nil)
        let again = ThresholdEvaluator.evaluate(rule, subject: Self.subject(95, at: 0), previous: first.state)
        #expect(again.state == first.state && again.transition == nil)
        let fired = ThresholdEvaluator.evaluate(rule, subject: Self.subject(95, at: 1), previous: again.state)
        #expect(fired.transition?.state == .firing)
        let replayed = ThresholdEvaluator.evaluate(rule, subject: Self.subject(95, at: 1), previous: fired.state)
        #expect(replayed.transition == nil && replayed.state == fired.state)
    }

    // MARK: Edited rules

    @Test func editsThatKeepTheAlertKeepItFiring() throws {
        let original = Self.rule(.greater, 90, clear: 80)
        let fired = Self.trace(original, [95])
        #expect(fired.marks == "F")
        // A new value, clear, for and scope: the same alert, judged by the edited rule from now on.
        let edited = Self.rule(.greater, 97, for: 4, clear: 60, scope: .user("u-1"))
        let step = ThresholdEvaluator.evaluate(edited, subject: Self.subject(70, at: 1), previous: fired.state)
        #expect(step.transition == nil)
        #expect(step.state?.firing?.rule == edited)
        let resolve = ThresholdEvaluator.evaluate(edited, subject: Self.subject(59, at: 2), previous: step.state)
        #expect(resolve.transition?.state == .resolved && resolve.transition?.threshold == 60)
    }

    @Test(arguments: [
        ("severity", ThresholdEvaluatorTests.rule(.greater, 90, severity: .critical)),
        ("labels", ThresholdEvaluatorTests.rule(.greater, 90, labels: ["team": "db"])),
        ("metric", ThresholdEvaluatorTests.rule(.greater, 90, metric: .memoryPercent)),
        ("op", ThresholdEvaluatorTests.rule(.greaterOrEqual, 90)),
    ])
    func editsThatMakeAnotherAlertResolveTheOldOne(changed: String, edited: ThresholdRule) throws {
        let original = Self.rule(.greater, 90)
        let fired = Self.trace(original, [95])
        let subject = ThresholdSubject(
            instanceID: "vm-1", userID: "u-1", isHost: false, period: Self.period(1),
            values: [.cpuPercentAvg: 96, .memoryPercent: 96])
        let step = ThresholdEvaluator.evaluate(edited, subject: subject, previous: fired.state)
        let resolve = try #require(step.transition, "editing the \(changed) kept the alert")
        #expect(resolve.state == .resolved && resolve.reason == .ruleChanged)
        #expect(resolve.rule == original, "the resolve must describe the alert that fired")
        #expect(step.state == nil)
        // The edited rule starts from rest with the next period.
        var next = subject
        next.period = Self.period(2)
        #expect(ThresholdEvaluator.evaluate(edited, subject: next, previous: step.state).transition?.state == .firing)
    }

    @Test func aPendingCountOfAnotherMetricStartsAgain() throws {
        let cpu = Self.rule(.greater, 90, for: 3)
        let pending = Self.trace(cpu, [95, 95])
        #expect(pending.state?.consecutivePeriods == 2)
        let memory = Self.rule(.greater, 90, for: 3, metric: .memoryPercent)
        let step = ThresholdEvaluator.evaluate(memory, subject: Self.subject(95, at: 2, metric: .memoryPercent), previous: pending.state)
        #expect(step.transition == nil)
        #expect(step.state?.consecutivePeriods == 1 && step.state?.metric == .memoryPercent)
        // A new value keeps the count.
        let stricter = Self.rule(.greater, 93, for: 3)
        let kept = ThresholdEvaluator.evaluate(stricter, subject: Self.subject(95, at: 2), previous: pending.state)
        #expect(kept.transition?.state == .firing)
    }

    // MARK: Rule sets

    static let host = ThresholdSubject(
        instanceID: "host-7", userID: "operator", isHost: true, period: period(0), values: [.cpuPercentAvg: 50])
    static let vm1 = ThresholdSubject(
        instanceID: "vm-1", userID: "u-1", isHost: false, period: period(0), values: [.cpuPercentAvg: 50])
    static let vm2 = ThresholdSubject(
        instanceID: "vm-2", userID: "u-2", orgID: "org-1", isHost: false, period: period(0), values: [.cpuPercentAvg: 50])

    @Test(arguments: [
        (ThresholdScope.host, ["host-7"]),
        (.instances, ["vm-1", "vm-2"]),
        (.instance("vm-2"), ["vm-2"]),
        (.instance("host-7"), ["host-7"]),
        (.instance("vm-9"), []),
        (.user("u-1"), ["vm-1"]),
        (.user("operator"), ["host-7"]),
        (.user("nobody"), []),
    ])
    func scopesPickTheirInstances(scope: ThresholdScope, expected: [String]) {
        let rule = Self.rule(.greater, 10, scope: scope)
        let round = ThresholdEvaluator.evaluate(rules: [rule], subjects: [Self.host, Self.vm1, Self.vm2], states: [:])
        #expect(round.transitions.map(\.instanceID) == expected)
        #expect(round.transitions.allSatisfy { $0.state == .firing })
        #expect(Set(round.states.keys) == Set(expected.map { ThresholdKey(rule: rule.name, instanceID: $0) }))
    }

    @Test func roundsCarryUserAndOrgIntoTheTransitions() throws {
        let round = ThresholdEvaluator.evaluate(
            rules: [Self.rule(.greater, 10, scope: .instance("vm-2"))], subjects: [Self.vm1, Self.vm2], states: [:])
        let fire = try #require(round.transitions.first)
        #expect(fire.userID == "u-2" && fire.orgID == "org-1")
        #expect(fire.event(hostID: "host-7", timestamp: 0).orgID == "org-1")
    }

    static func at(_ subject: ThresholdSubject, _ index: Int, value: Double? = nil) -> ThresholdSubject {
        var subject = subject
        subject.period = period(index)
        if let value { subject.values[.cpuPercentAvg] = value }
        return subject
    }

    @Test func aRemovedFiringRuleResolvesAndItsStateIsDropped() throws {
        let firing = Self.rule(.greater, 10, name: "a-fires", severity: .critical, labels: ["team": "ops"])
        let pending = Self.rule(.greater, 10, for: 5, name: "b-pending")
        let kept = Self.rule(.greater, 10, name: "c-kept")
        let first = ThresholdEvaluator.evaluate(rules: [firing, pending, kept], subjects: [Self.vm1, Self.vm2], states: [:])
        #expect(first.transitions.count == 4)
        #expect(first.states.count == 6)

        // vm-2 closes no period this round: its removed alert still resolves, with its last period.
        let second = ThresholdEvaluator.evaluate(rules: [kept], subjects: [Self.at(Self.vm1, 1, value: 70)], states: first.states)
        #expect(second.transitions.map(\.reason) == [.ruleRemoved, .ruleRemoved])
        #expect(second.transitions.map(\.instanceID) == ["vm-1", "vm-2"])
        #expect(second.transitions.allSatisfy { $0.state == .resolved && $0.rule == firing && $0.threshold == 10 })
        let vm1 = second.transitions[0]
        let vm2 = second.transitions[1]
        #expect(vm1.period == Self.period(1) && vm1.value == 70)
        #expect(vm2.period == Self.period(0) && vm2.value == 50 && vm2.userID == "u-2" && vm2.orgID == "org-1")
        #expect(
            Set(second.states.keys)
                == [ThresholdKey(rule: "c-kept", instanceID: "vm-1"), ThresholdKey(rule: "c-kept", instanceID: "vm-2")])
        // The resolve's event goes under the labels and severity the alert fired with.
        let event = vm1.event(hostID: "host-7", timestamp: 0)
        #expect(event.severity == "critical" && event.labels == ["team": "ops"] && event.state == .resolved)
    }

    @Test func anInstanceLeavingAnEditedScopeResolves() throws {
        let rule = Self.rule(.greater, 10, scope: .instances)
        let first = ThresholdEvaluator.evaluate(rules: [rule], subjects: [Self.vm1, Self.vm2], states: [:])
        var narrowed = rule
        narrowed.scope = .instance("vm-2")
        let second = ThresholdEvaluator.evaluate(
            rules: [narrowed], subjects: [Self.at(Self.vm1, 1), Self.at(Self.vm2, 1)], states: first.states)
        #expect(second.transitions.count == 1)
        let resolve = try #require(second.transitions.first)
        #expect(resolve.instanceID == "vm-1" && resolve.reason == .outOfScope && resolve.state == .resolved)
        #expect(second.states.keys.map(\.instanceID) == ["vm-2"])
        #expect(second.states.values.first?.isFiring == true)
    }

    @Test func instancesMissingFromARoundKeepTheirState() {
        let rule = Self.rule(.greater, 10, for: 3)
        let first = ThresholdEvaluator.evaluate(rules: [rule], subjects: [Self.vm1, Self.vm2], states: [:])
        let second = ThresholdEvaluator.evaluate(rules: [rule], subjects: [Self.at(Self.vm1, 1)], states: first.states)
        #expect(second.states[ThresholdKey(rule: rule.name, instanceID: "vm-2")] == first.states[ThresholdKey(rule: rule.name, instanceID: "vm-2")])
        #expect(second.states[ThresholdKey(rule: rule.name, instanceID: "vm-1")]?.consecutivePeriods == 2)
        #expect(second.transitions.isEmpty)
    }

    @Test func roundsAtRestKeepNoState() {
        let rules = (0..<5).map { Self.rule(.greater, 90, name: "r\($0)") }
        let round = ThresholdEvaluator.evaluate(rules: rules, subjects: [Self.host, Self.vm1, Self.vm2], states: [:])
        #expect(round.states.isEmpty && round.transitions.isEmpty)
    }

    @Test func roundsAgreeWithTheSingleStep() async {
        // Random rule sets and values: the round's states and transitions are what evaluating each
        // in-scope pair alone gives.
        await propertyCheck(count: 100, input: Gen.int(in: 0...Int.max)) { seed in
            var random = SplitMix64(state: UInt64(seed))
            let rules = (0..<6).map { index -> ThresholdRule in
                let op = ThresholdOperator.allCases.randomElement(using: &random)!
                let scope = [ThresholdScope.instances, .host, .user("u-1"), .instance("vm-2")].randomElement(using: &random)!
                let clear: Double? = Bool.random(using: &random) ? (op.isUpward ? 40 : 60) : nil
                return Self.rule(op, 50, for: Int.random(in: 1...3, using: &random), clear: clear, name: "r\(index)", scope: scope)
            }
            var states: [ThresholdKey: ThresholdState] = [:]
            for index in 0..<40 {
                let subjects = [Self.host, Self.vm1, Self.vm2].map { Self.at($0, index, value: Double.random(in: 0...100, using: &random)) }
                let round = ThresholdEvaluator.evaluate(rules: rules, subjects: subjects, states: states)
                var expected: [ThresholdKey: ThresholdState] = [:]
                var transitions: [ThresholdTransition] = []
                for subject in subjects {
                    for rule in rules where rule.scope.contains(instanceID: subject.instanceID, userID: subject.userID, isHost: subject.isHost) {
                        let key = ThresholdKey(rule: rule.name, instanceID: subject.instanceID)
                        let step = ThresholdEvaluator.evaluate(rule, subject: subject, previous: states[key])
                        expected[key] = step.state
                        if let transition = step.transition { transitions.append(transition) }
                    }
                }
                #expect(round.states == expected, "seed \(seed) period \(index)")
                #expect(round.transitions == transitions, "seed \(seed) period \(index)")
                states = round.states
            }
        }
    }

    @Test func retiringAnInstanceResolvesItsAlerts() throws {
        let rules = [Self.rule(.greater, 10, name: "fires"), Self.rule(.greater, 10, for: 4, name: "pending")]
        let first = ThresholdEvaluator.evaluate(rules: rules, subjects: [Self.vm1, Self.vm2], states: [:])
        let retired = ThresholdEvaluator.retire(instanceID: "vm-1", states: first.states)
        #expect(retired.transitions.count == 1)
        let resolve = try #require(retired.transitions.first)
        #expect(resolve.reason == .instanceRetired && resolve.instanceID == "vm-1" && resolve.period == Self.period(0))
        #expect(Set(retired.states.keys.map(\.instanceID)) == ["vm-2"])
        #expect(retired.states.count == 2)
    }

    @Test func firingEventsRebuildTheOriginalFirings() throws {
        let rules = [Self.rule(.greater, 10, name: "fires", labels: ["team": "ops"]), Self.rule(.greater, 10, for: 4, name: "pending")]
        let first = ThresholdEvaluator.evaluate(rules: rules, subjects: [Self.vm1, Self.vm2], states: [:])
        let original = first.transitions.map { $0.event(hostID: "host-7", timestamp: 100) }
        // Later periods that keep firing do not change what is rebuilt.
        let later = ThresholdEvaluator.evaluate(rules: rules, subjects: [Self.at(Self.vm1, 1), Self.at(Self.vm2, 1)], states: first.states)
        #expect(later.transitions.isEmpty)
        let rebuilt = ThresholdEvaluator.firingEvents(states: later.states, hostID: "host-7", timestamp: 100)
        #expect(rebuilt == original)
        #expect(rebuilt.map(\.instanceID) == ["vm-1", "vm-2"])
    }
}
