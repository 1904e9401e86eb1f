import PropertyBased
import Probes
import Testing
import TestSupport
import UsageModel

@testable import Metering

/// The engine over a host's whole population: instances that start, stop, run again with a new
/// cgroup, are not probed for a while, are removed and registered again, with crashes that lose
/// the in-memory state (the agent restarts from what was committed) and steps that are never
/// stored. Every counted nanosecond is billed once, checkpoints are written when the rule says,
/// and every firing alert of a removed instance resolves exactly once.
@Suite struct MeteringEngineTests {
    static let boot = "22222222-2222-4222-8222-222222222222"
    static let ids = ["vm-1", "vm-2", "vm-3"]
    let engine = MeteringEngine(
        configuration: MeterConfiguration(hostID: "host-1", intervalSeconds: 10),
        identity: InstanceIdentity(instanceID: "host-1", userID: "operator"), meterHost: false)

    static func hostSample(wall: Double) -> HostSample {
        var sample = HostSample(time: SampleTime(wallNanos: Int64(wall * 1e9), bootNanos: UInt64((wall - 500) * 1e9)))
        sample.bootID = boot
        return sample
    }

    static func reading(wall: Double, cpu: UInt64, inode: UInt64) -> InstanceReading {
        InstanceReading(
            time: SampleTime(wallNanos: Int64(wall * 1e9), bootNanos: UInt64((wall - 500) * 1e9)), bootID: boot,
            counters: [CounterSource(.cpuNanoseconds, "cgroup"): cpu], cpuCapacity: 2, generations: ["cgroup": inode])
    }

    /// What a database holds after each stored step: written checkpoints, deleted ones, rule state.
    static func store(_ step: MeteringStep, into stored: inout MeteringState) {
        for id in step.checkpointsToWrite { stored.checkpoints[id] = step.state.checkpoints[id] }
        for id in step.removedCheckpoints { stored.checkpoints[id] = nil }
        if let thresholds = step.thresholdStates { stored.thresholds = thresholds }
    }

    struct Life {
        var registered = false
        var running = false
        var inode: UInt64 = 0
        var counter: UInt64 = 0
        /// The counter at the agent's latest committed sight of this cgroup: what the next step bills from.
        var lastSeen: UInt64?
        var lastInode: UInt64?
        var expectedNanos: UInt64 = 0
        var billedSeconds: Int64 = 0
        var removals: Int64 = 0
        var periods: [Period] = []
    }

    @Test func everyCountedNanosecondIsBilledOnceAcrossStopsRemovalsAndRestarts() async throws {
        let rule = try ThresholdRule(
            name: "busy", metric: .cpuSeconds, op: .greater, value: 2, forPeriods: 2, scope: .instances)
        await propertyCheck(count: 200, input: Gen.int(in: 0...Int.max)) { seed in
            var random = SplitMix64(state: UInt64(seed))
            var lives = Dictionary(uniqueKeysWithValues: Self.ids.map { ($0, Life()) })
            var state = MeteringState()
            var stored = MeteringState()
            var alerts: [ThresholdKey: [ThresholdEvent.State]] = [:]
            // The ledger as of each instance's stored checkpoint.
            var ledgerAtStore: [String: (expected: UInt64, lastSeen: UInt64?, lastInode: UInt64?)] = [:]
            var wall = 2_000.0
            for _ in 0..<150 {
                wall += 0.5 + Double(random.next() % 6_000) / 1_000
                // Change the population.
                for id in Self.ids {
                    switch random.next() % 25 {
                    case 0: lives[id]!.registered.toggle()
                        if lives[id]!.registered { lives[id]!.running = true; lives[id]!.inode += 1; lives[id]!.counter = 0 }
                    case 1 where lives[id]!.running: lives[id]!.running = false
                    case 2 where lives[id]!.registered && !lives[id]!.running:
                        lives[id]!.running = true; lives[id]!.inode += 1; lives[id]!.counter = 0
                    default: break
                    }
                    if lives[id]!.running { lives[id]!.counter += random.next() % 4_000_000_000 }
                }
                // One sample: probed (or not, 1 in 6), then stored, or lost to a crash before the commit.
                let probed = random.next() % 6 != 0
                let observations: [InstanceObservation]? =
                    probed
                    ? Self.ids.filter { lives[$0]!.registered }.map { id in
                        let life = lives[id]!
                        return InstanceObservation(
                            identity: InstanceIdentity(instanceID: id, userID: "u-\(id)"),
                            reading: life.running ? Self.reading(wall: wall, cpu: life.counter, inode: life.inode) : nil)
                    } : nil
                guard
                    let step = engine.step(
                        state, sample: Self.hostSample(wall: wall), instances: observations, rules: [rule])
                else {
                    Issue.record("seed \(seed): a sample with a boot ID was not metered")
                    return
                }
                switch random.next() % 20 {
                case 0:
                    continue  // the commit failed: nothing adopted, the usage is billed later
                case 1:
                    // A crash: restart from the database. What only the lost memory had seen of a
                    // cgroup is measured again from the stored checkpoint with the next sight of
                    // the same cgroup; if the cgroup was recreated first, it is lost (checkpoints
                    // are written once per period, docs/ARCHITECTURE.md), so the ledger forgets it.
                    state = stored
                    for id in Self.ids {
                        let saved = ledgerAtStore[id]
                        lives[id]!.expectedNanos = saved?.expected ?? lives[id]!.expectedNanos
                        lives[id]!.lastSeen = stored.checkpoints[id] == nil ? nil : saved?.lastSeen
                        lives[id]!.lastInode = saved?.lastInode
                    }
                    continue
                default:
                    Self.store(step, into: &stored)
                    state = step.state
                }
                // The ledger: what the agent saw of each cgroup. A sight after one with the same
                // cgroup bills the increase; a new cgroup of an instance the agent knows bills all
                // of its count; the first sight of an instance is its baseline.
                for observation in observations ?? [] {
                    let id = observation.identity.instanceID
                    guard let reading = observation.reading, let counter = reading.counters.first?.value else { continue }
                    let inode = reading.generations["cgroup"]
                    if let lastSeen = lives[id]!.lastSeen {
                        lives[id]!.expectedNanos += inode == lives[id]!.lastInode ? counter - lastSeen : counter
                    }
                    lives[id]!.lastSeen = counter
                    lives[id]!.lastInode = inode
                }
                for id in step.removedCheckpoints {
                    lives[id]!.lastSeen = nil
                    lives[id]!.removals += 1
                }
                for id in step.checkpointsToWrite + step.removedCheckpoints where lives[id] != nil {
                    ledgerAtStore[id] = (lives[id]!.expectedNanos, lives[id]!.lastSeen, lives[id]!.lastInode)
                }
                for event in step.events {
                    lives[event.instanceID]!.billedSeconds += event.metrics.cpuSeconds
                    lives[event.instanceID]!.periods.append(event.period)
                }
                for alert in step.thresholdEvents {
                    alerts[ThresholdKey(rule: alert.rule, instanceID: alert.instanceID), default: []].append(alert.state)
                }
                // Checkpoints written: an instance's only when it changed; removed ones deleted.
                for id in step.checkpointsToWrite { #expect(step.state.checkpoints[id] != nil) }
                for id in step.removedCheckpoints {
                    #expect(step.state.checkpoints[id] == nil, "seed \(seed): \(id) kept its checkpoint")
                    #expect(!step.state.thresholds.keys.contains { $0.instanceID == id }, "seed \(seed): \(id) kept rule state")
                }
            }
            for (id, life) in lives.sorted(by: { $0.key < $1.key }) {
                let checkpoint = state.checkpoints[id]
                let open = checkpoint.map { $0.openUsage(.cpuNanoseconds) + $0.cpuCarryNanos } ?? 0
                let billed = UInt64(life.billedSeconds) * 1_000_000_000 + open
                let lost = UInt64(life.removals) * 1_000_000_000
                #expect(
                    billed <= life.expectedNanos && billed + lost >= life.expectedNanos,
                    "seed \(seed): \(id) billed \(billed) ns, counted \(life.expectedNanos) ns, \(life.removals) removals")
                let periods = life.periods.sorted { $0.start < $1.start }
                for (earlier, later) in zip(periods, periods.dropFirst()) {
                    #expect(earlier.end <= later.start, "seed \(seed): \(id): \(earlier) overlaps \(later)")
                }
            }
            for (key, states) in alerts {
                // Firing and resolved alternate, firing first: nothing fires twice or resolves twice.
                for (index, alertState) in states.enumerated() {
                    #expect(alertState == (index % 2 == 0 ? .firing : .resolved), "seed \(seed): \(key): \(states)")
                }
                let firing = state.thresholds[key]?.firing != nil
                #expect(firing == (states.last == .firing), "seed \(seed): \(key) ends \(states), state firing: \(firing)")
            }
        }
    }
}
