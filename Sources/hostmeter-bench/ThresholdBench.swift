import ArgumentParser
import Foundation
import Metering
import Probes
import UsageModel

/// The cost of threshold evaluation per rule per instance: the pure step alone, and a whole round
/// over the state map (scope checks, state lookups and stores, removed-rule handling).
struct ThresholdBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "thresholds", abstract: "Cost of evaluating threshold rules, in ns per rule per instance.")

    @Option(help: "Rules in the set.")
    var rules = 20

    @Option(help: "Metered instances.")
    var instances = 1000

    @Option(help: "Measured rounds (closed periods), after 20 warm-up ones.")
    var rounds = 200

    struct Report: Encodable {
        let benchmark = "thresholds"
        let rules: Int
        let instances: Int
        let rounds: Int
        /// `ThresholdEvaluator.evaluate(_:subject:previous:)` with states in an array.
        let stepNanosPerRuleInstance: Double
        /// `ThresholdEvaluator.evaluate(rules:subjects:states:)`: the whole round over the map.
        let roundNanosPerRuleInstance: Double
        let roundCPUNanosPerRuleInstance: Double
        let roundWall: Distribution
        let transitionsPerRound: Double
        let statesAfterLastRound: Int

        enum CodingKeys: String, CodingKey {
            case benchmark, rules, instances, rounds
            case stepNanosPerRuleInstance = "step_ns_per_rule_instance"
            case roundNanosPerRuleInstance = "round_ns_per_rule_instance"
            case roundCPUNanosPerRuleInstance = "round_cpu_ns_per_rule_instance"
            case roundWall = "round_wall"
            case transitionsPerRound = "transitions_per_round"
            case statesAfterLastRound = "states_after_last_round"
        }
    }

    func validate() throws {
        guard (1...1000).contains(rules) else { throw ValidationError("--rules must be 1…1000") }
        guard (1...100_000).contains(instances) else { throw ValidationError("--instances must be 1…100000") }
        guard (1...100_000).contains(rounds) else { throw ValidationError("--rounds must be 1…100000") }
    }

    /// A realistic mix: every metric and operator, `for` from 1 to 5, half with a clear value,
    /// scopes over all instances, one user's and one instance's.
    func ruleSet() throws -> [ThresholdRule] {
        let metrics: [ThresholdMetric] = [
            .cpuPercentAvg, .memoryPercent, .filesystemUsedPercent, .loadPerCPU, .networkEgressMB, .gpuUtilizationPercent,
        ]
        return try (0..<rules).map { index in
            let op = ThresholdOperator.allCases[index % 4]
            let upward = op.isUpward
            let scope: ThresholdScope =
                switch index % 10 {
                case 8: .user("u-\(index % 7)")
                case 9: .instance("vm-\(index % instances)")
                default: .instances
                }
            return try ThresholdRule(
                name: "rule-\(index)", metric: metrics[index % metrics.count], op: op, value: upward ? 70 : 30,
                forPeriods: 1 + index % 5, clear: index % 2 == 0 ? nil : (upward ? 60 : 40),
                severity: ThresholdSeverity.allCases[index % 3], scope: scope, labels: ["team": "ops-\(index % 3)"])
        }
    }

    /// Every metric swings 0…100 around the thresholds, each instance at its own phase; one in
    /// ten has no GPU.
    func subjects(round: Int) -> [ThresholdSubject] {
        let period = Period(start: 1_763_726_400 + Int64(round) * 30, end: 1_763_726_430 + Int64(round) * 30)
        return (0..<instances).map { index in
            var values: [ThresholdMetric: Double] = [:]
            for (offset, metric) in ThresholdMetric.allCases.enumerated() {
                if index % 10 == 0, metric.rawValue.hasPrefix("gpu") { continue }
                values[metric] = 50 + 50 * sin(Double(round) * 0.07 + Double(index) * 0.37 + Double(offset))
            }
            return ThresholdSubject(
                instanceID: "vm-\(index)", userID: "u-\(index % 7)", isHost: false, period: period, values: values)
        }
    }

    func run() throws {
        let rules = try ruleSet()
        let total = 20 + rounds
        let inputs = (0..<total).map(subjects(round:))

        // The pure step, states kept in a flat array.
        var flat = [ThresholdState?](repeating: nil, count: rules.count * instances)
        var fired = 0
        var stepNanos: UInt64 = 0
        for (round, subjects) in inputs.enumerated() {
            let start = HostClock.monotonicNanos()
            for (i, subject) in subjects.enumerated() {
                for (r, rule) in rules.enumerated() {
                    let step = ThresholdEvaluator.evaluate(rule, subject: subject, previous: flat[i * rules.count + r])
                    flat[i * rules.count + r] = step.state
                    if step.transition != nil { fired += 1 }
                }
            }
            if round >= 20 { stepNanos += HostClock.monotonicNanos() - start }
        }

        // Whole rounds over the state map.
        var states: [ThresholdKey: ThresholdState] = [:]
        var wall: [UInt64] = []
        var cpu: UInt64 = 0
        var transitions = 0
        for (round, subjects) in inputs.enumerated() {
            let cpuStart = HostClock.threadCPUNanos()
            let start = HostClock.monotonicNanos()
            let result = ThresholdEvaluator.evaluate(rules: rules, subjects: subjects, states: states)
            let elapsed = HostClock.monotonicNanos() - start
            let cpuElapsed = HostClock.threadCPUNanos() - cpuStart
            states = result.states
            if round >= 20 {
                wall.append(elapsed)
                cpu += cpuElapsed
                transitions += result.transitions.count
            }
        }
        guard fired > 0, transitions > 0 else { throw ValidationError("the workload made no transitions; nothing was measured") }

        let pairs = Double(rules.count * instances * rounds)
        try printJSON(
            Report(
                rules: rules.count, instances: instances, rounds: rounds,
                stepNanosPerRuleInstance: Double(stepNanos) / pairs,
                roundNanosPerRuleInstance: Double(wall.reduce(0, +)) / pairs,
                roundCPUNanosPerRuleInstance: Double(cpu) / pairs, roundWall: Distribution(nanoseconds: wall),
                transitionsPerRound: Double(transitions) / Double(rounds), statesAfterLastRound: states.count))
    }
}
