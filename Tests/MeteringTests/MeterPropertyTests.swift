import Foundation
import PropertyBased
import Probes
import Testing
import TestSupport
import UsageModel

@testable import Metering

/// The billing invariants as properties over random histories of a simulated host: counters that
/// grow, agents that crash before committing, restart from their checkpoint, wall clocks that step,
/// interfaces that are recreated, hosts that reboot, collectors that fail for a sample.
///
/// The simulation keeps its own ledger of what the meter can know (usage between two stored samples
/// of the same counter and boot) and of what is unknowable (usage across a reboot or a recreated
/// counter), computed from the increments it made, not from the meter.
@Suite struct MeterPropertyTests {
    @Test func invariantsHoldOverRandomHistories() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int.max)) { seed in
            var simulation = HostSimulation(seed: UInt64(seed))
            simulation.run(steps: 250)
            simulation.checkInvariants()
            // Restarts through the stored checkpoint change nothing: the same readings through one
            // meter that never restarts give the same events and the same final state.
            let replay = simulation.replayWithoutRestarts()
            #expect(replay.events == simulation.events, "seed \(seed): restarts changed the events")
            #expect(replay.state == simulation.state, "seed \(seed): restarts changed the checkpoint")
        }
    }
}

struct HostSimulation {
    enum Action: Equatable { case commit, crashBeforeCommit, restart }

    let seed: UInt64
    var random: SplitMix64
    let configuration: MeterConfiguration
    let identity = InstanceIdentity(instanceID: "vm-1", userID: "u-1")
    let capacity: Double = 4

    // The host.
    var wallNanos: Int64
    var bootNanos: UInt64
    var bootNumber = 0
    var counters: [CounterSource: UInt64] = [:]

    // The ledger.
    var pending: [CounterSource: UInt64] = [:]
    var untrusted: Set<CounterSource> = []
    var counted: [CounterKind: UInt64] = [:]
    var trueTotal: [CounterKind: UInt64] = [:]

    // The meter and what it produced.
    var state: MeterState?
    var events: [UsageEvent] = []
    var gaps: [MeteringGap] = []
    var baselines: [MeteringBaseline] = []
    var firstPeriodStart: Int64?
    /// Every reading with what happened to it, for the replay.
    var history: [(InstanceReading, Action)] = []

    static let cpu = CounterSource(.cpuNanoseconds, "cpu")
    static let sources = [
        cpu, CounterSource(.egressBytes, "eth0"), CounterSource(.ingressBytes, "eth0"),
        CounterSource(.egressBytes, "tap1"), CounterSource(.ingressBytes, "tap1"),
    ]

    init(seed: UInt64) {
        self.seed = seed
        random = SplitMix64(state: seed)
        let intervals: [Int64] = [1, 5, 30, 60]
        configuration = MeterConfiguration(hostID: "host-1", intervalSeconds: intervals[Int(seed % 4)])
        wallNanos = 1_763_726_400_000_000_000 + Int64.random(in: 0...86_400_000_000_000, using: &random)
        bootNanos = UInt64.random(in: 1_000_000_000...100_000_000_000, using: &random)
        for source in Self.sources {
            // Large starting values, so a recreated counter always reads lower than its baseline.
            counters[source] = UInt64.random(in: 1 << 40...1 << 50, using: &random)
        }
        untrusted = Set(Self.sources)
    }

    var bootID: String { String(format: "00000000-0000-4000-8000-%012d", bootNumber) }

    mutating func run(steps: Int) {
        for _ in 0..<steps {
            let roll = Int.random(in: 0..<100, using: &random)
            switch roll {
            case 0..<3: reboot()
            case 3..<6 where counters[CounterSource(.egressBytes, "tap1")]! >= 1 << 40: recreate("tap1")
            case 6..<10: wallNanos += Int64.random(in: -300_000_000_000...900_000_000_000, using: &random)
            default: break
            }
            advance()
            let reading = makeReading(cpuMissing: Int.random(in: 0..<100, using: &random) < 5)
            let action: Action =
                switch Int.random(in: 0..<100, using: &random) {
                case 0..<6: .crashBeforeCommit
                case 6..<14: .restart
                default: .commit
                }
            apply(reading, action)
        }
    }

    /// Time passes and counters grow.
    mutating func advance() {
        let elapsed = UInt64.random(in: 100_000_000...12_000_000_000, using: &random)
        bootNanos += elapsed
        wallNanos += Int64(elapsed) + Int64.random(in: -5_000_000...5_000_000, using: &random)
        for source in Self.sources {
            let increment: UInt64 =
                source.kind == .cpuNanoseconds
                ? UInt64.random(in: 0...UInt64(Double(elapsed) * capacity), using: &random)
                : UInt64.random(in: 0...50_000_000, using: &random)
            counters[source]! += increment
            pending[source, default: 0] += increment
            trueTotal[source.kind, default: 0] += increment
        }
    }

    /// The host reboots: every counter starts again, and what was not yet stored is unknowable.
    mutating func reboot() {
        bootNumber += 1
        wallNanos += Int64.random(in: 1_000_000_000...600_000_000_000, using: &random)
        bootNanos = UInt64.random(in: 1_000_000_000...60_000_000_000, using: &random)
        for source in Self.sources {
            // Large again (usage since boot before the agent's first sample), so that a recreated
            // counter reads lower than its baseline: one that overtakes its old value before the
            // next sample cannot be told from growth, by this meter or any other.
            counters[source] = UInt64.random(in: 1 << 40...1 << 50, using: &random)
            pending[source] = 0
        }
        untrusted = Set(Self.sources)
    }

    /// An interface is deleted and created again: its counters restart from zero.
    ///
    /// Only while its counters are still large (once per boot): a recreated counter that grows past
    /// its old stored value before the next sample is indistinguishable from growth, for this meter
    /// or any other that sees only the value. Sources that carry an identity (ifindex, cgroup
    /// inode) in their name avoid that; see docs/ARCHITECTURE.md.
    mutating func recreate(_ interface: String) {
        for source in Self.sources where source.name == interface {
            counters[source] = 0
            untrusted.insert(source)
        }
    }

    func makeReading(cpuMissing: Bool) -> InstanceReading {
        var readingCounters = counters
        if cpuMissing { readingCounters[Self.cpu] = nil }
        // Memory comes from a generator seeded by the moment, so a reading is a pure function of
        // the simulation's state.
        var memoryRandom = SplitMix64(state: seed ^ UInt64(bitPattern: wallNanos) ^ bootNanos)
        return InstanceReading(
            time: SampleTime(wallNanos: wallNanos, bootNanos: bootNanos), bootID: bootID, counters: readingCounters,
            cpuCapacity: capacity, memoryUsedBytes: UInt64.random(in: 0...8_000_000_000, using: &memoryRandom),
            memoryTotalBytes: 8_000_000_000, storageUsedBytes: 20_000_000_000)
    }

    mutating func apply(_ reading: InstanceReading, _ action: Action) {
        history.append((reading, action))
        if action == .restart, let current = state {
            state = try! JSONDecoder().decode(MeterState.self, from: JSONEncoder().encode(current))
        }
        let step = Meter.advance(state, with: reading, identity: identity, configuration: configuration)
        guard action != .crashBeforeCommit else { return }
        state = step.state
        events += step.events
        gaps += step.gaps
        if let baseline = step.baseline {
            baselines.append(baseline)
            if firstPeriodStart == nil { firstPeriodStart = step.state.period.start }
        }
        // The ledger: usage of each stored counter since its last stored sample is now known,
        // unless the counter was reset or the boot changed in between.
        for source in reading.counters.keys {
            let amount = pending[source] ?? 0
            if untrusted.remove(source) == nil { counted[source.kind, default: 0] += amount }
            pending[source] = 0
        }
    }

    func checkInvariants() {
        let context = "seed \(seed), interval \(configuration.intervalSeconds)"
        guard let state else {
            Issue.record("\(context): the meter never stored a state")
            return
        }
        // Contiguity: each period starts where the previous ended, or across a recorded reboot.
        // Several reboots in a row leave a chain of gaps, in the order they were recorded; follow it.
        // The first period starts at the first baseline, or after reboots that billed nothing.
        let rebootGaps = gaps.filter { $0.reason == .reboot }
        let ends = [firstPeriodStart].compactMap { $0 } + events.map(\.period.end)
        for (end, later) in zip(ends, events) where later.period.start != end {
            var reached = end
            for gap in rebootGaps where gap.from == reached { reached = gap.to }
            #expect(reached == later.period.start, "\(context): \(later.period) follows \(end) with no recorded gap")
        }
        if let last = events.last { #expect(state.period.start >= last.period.end, "\(context)") }

        // Conservation: stored events plus the open period hold exactly the knowable usage.
        let cpuBilled = events.reduce(Int64(0)) { $0 + $1.metrics.cpuSeconds }
        let cpuKnown = counted[.cpuNanoseconds] ?? 0
        #expect(
            UInt64(cpuBilled) * 1_000_000_000 + state.cpuCarryNanos + state.openUsage(.cpuNanoseconds) == cpuKnown,
            "\(context): CPU not conserved")
        let cpuClosed = Double(cpuKnown - state.openUsage(.cpuNanoseconds)) / 1e9
        #expect(abs(Double(cpuBilled) - cpuClosed) < 1, "\(context): Σ cpu_seconds drifts by ≥ 1")
        for kind in [CounterKind.egressBytes, .ingressBytes] {
            let billed = events.reduce(UInt64(0)) { total, event in
                let megabytes = kind == .egressBytes ? event.metrics.networkEgressMB : event.metrics.networkIngressMB
                return total + UInt64((megabytes * 1e6).rounded())
            }
            #expect(billed + state.openUsage(kind) == counted[kind] ?? 0, "\(context): \(kind) not conserved")
        }

        // No negative, empty or absurd values; idempotent ids.
        let trueCPUSeconds = Int64((trueTotal[.cpuNanoseconds] ?? 0) / 1_000_000_000)
        for event in events {
            #expect(event.period.end > event.period.start, "\(context): empty period \(event.period)")
            #expect(event.metrics.cpuSeconds >= 0 && event.metrics.cpuSeconds <= trueCPUSeconds + 1, "\(context)")
            #expect(event.metrics.networkEgressMB >= 0 && event.metrics.networkIngressMB >= 0, "\(context)")
            #expect(event.metrics.cpuPercentAvg >= 0 && event.metrics.memoryPercent >= 0, "\(context)")
            #expect(
                event.eventID == UsageEvent.eventID(hostID: "host-1", instanceID: "vm-1", period: event.period),
                "\(context)")
        }
        #expect(Set(events.map(\.eventID)).count == events.count, "\(context): an event id repeats")
        for gap in gaps { #expect(gap.to >= gap.from, "\(context): backwards gap") }
    }

    /// The same readings, crashes included, through a meter that never reloads its state.
    func replayWithoutRestarts() -> (events: [UsageEvent], state: MeterState?) {
        var state: MeterState?
        var events: [UsageEvent] = []
        for (reading, action) in history {
            let step = Meter.advance(state, with: reading, identity: identity, configuration: configuration)
            if action != .crashBeforeCommit {
                state = step.state
                events += step.events
            }
        }
        return (events, state)
    }
}
