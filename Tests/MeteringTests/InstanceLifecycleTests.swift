import Foundation
import PropertyBased
import Probes
import Testing
import TestSupport
import UsageModel

@testable import Metering

/// An instance's life on a VM host: it starts, stops (cgroup or tap gone), runs again, has its
/// cgroup recreated, and is removed. Every second and byte it used is billed once.
@Suite struct InstanceLifecycleTests {
    static let boot = "11111111-1111-4111-8111-111111111111"
    let identity = InstanceIdentity(instanceID: "vm-42", userID: "u-9", orgID: "org-1")
    let configuration = MeterConfiguration(hostID: "host-7", intervalSeconds: 30)

    /// A reading of a VM: cgroup CPU nanoseconds with the cgroup's inode as generation, and one
    /// tap's egress with its ifindex.
    static func reading(
        wall: Double, cpu: UInt64, inode: UInt64 = 100, egress: UInt64 = 0, ifindex: UInt64 = 7, gpus: Int = 0
    ) -> InstanceReading {
        InstanceReading(
            time: SampleTime(wallNanos: Int64(wall * 1e9), bootNanos: UInt64((wall - 900) * 1e9)), bootID: boot,
            counters: [CounterSource(.cpuNanoseconds, "cgroup"): cpu, CounterSource(.egressBytes, "tap0"): egress],
            cpuCapacity: 2, generations: ["cgroup": inode, "tap0": ifindex], assignedGPUs: gpus)
    }

    func advance(_ state: MeterState?, _ reading: InstanceReading) -> MeterStep {
        Meter.advance(state, with: reading, identity: identity, configuration: configuration)
    }

    @Test func stoppingBillsThePartialPeriodAndNothingWhileStopped() throws {
        var state = advance(nil, Self.reading(wall: 1000, cpu: 0)).state
        state = advance(state, Self.reading(wall: 1005, cpu: 3_000_000_000)).state
        let stop = Meter.suspend(state, identity: identity, configuration: configuration, timestamp: 1010)
        let event = try #require(stop.events.first)
        #expect(event.period == Period(start: 1000, end: 1005))
        #expect(event.metrics.cpuSeconds == 3)
        #expect(stop.state.stoppedAt == 1005)
        #expect(!stop.state.isRunning)
        // Suspending again changes nothing and bills nothing.
        let again = Meter.suspend(stop.state, identity: identity, configuration: configuration, timestamp: 1020)
        #expect(again.events.isEmpty)
        #expect(again.state == stop.state)
    }

    @Test func runningAgainWithANewCgroupCountsItFromZeroAndRecordsTheStop() throws {
        var state = advance(nil, Self.reading(wall: 1000, cpu: 5_000_000_000)).state
        state = advance(state, Self.reading(wall: 1005, cpu: 6_000_000_000)).state
        state = Meter.suspend(state, identity: identity, configuration: configuration, timestamp: 1005).state
        // The VM was restarted: a new cgroup (inode 200) that has used 2 s since it was created.
        let resumed = advance(state, Self.reading(wall: 1100, cpu: 2_000_000_000, inode: 200))
        #expect(resumed.state.isRunning)
        #expect(resumed.state.period.start == 1100)
        #expect(resumed.state.openUsage(.cpuNanoseconds) == 2_000_000_000)
        #expect(resumed.gaps.map(\.reason).contains(.instanceStopped))
        #expect(resumed.gaps.contains { $0.reason == .instanceStopped && $0.from == 1005 && $0.to == 1100 })
        let closed = advance(resumed.state, Self.reading(wall: 1121, cpu: 4_000_000_000, inode: 200))
        let event = try #require(closed.events.first)
        #expect(event.period == Period(start: 1100, end: 1110) || event.period.start == 1100)
        #expect(event.metrics.cpuSeconds == 4)
    }

    @Test func aCgroupThatSurvivedTheStopIsBilledFromWhereItWas() throws {
        // The tap went away (not running) but the cgroup kept counting: nothing of it is lost.
        var state = advance(nil, Self.reading(wall: 1000, cpu: 1_000_000_000)).state
        state = Meter.suspend(state, identity: identity, configuration: configuration, timestamp: 1003).state
        let resumed = advance(state, Self.reading(wall: 1050, cpu: 9_000_000_000))
        #expect(resumed.state.openUsage(.cpuNanoseconds) == 8_000_000_000)
    }

    @Test func aRecreatedCgroupBetweenTwoSamplesIsAResetNotANegativeDelta() throws {
        var state = advance(nil, Self.reading(wall: 1000, cpu: 50_000_000_000)).state
        // Recreated with a counter below the old one, and another time above it: both are resets.
        let below = advance(state, Self.reading(wall: 1005, cpu: 1_000_000_000, inode: 101))
        #expect(below.state.openUsage(.cpuNanoseconds) == 1_000_000_000)
        #expect(below.gaps.count == 1)
        #expect(below.gaps[0].reason == .counterReset)
        state = below.state
        let above = advance(state, Self.reading(wall: 1010, cpu: 70_000_000_000, inode: 102))
        #expect(above.state.openUsage(.cpuNanoseconds) == 71_000_000_000)
        #expect(above.gaps.count == 1)
    }

    @Test func aRecreatedTapIsAResetOfItsCountersOnly() throws {
        var state = advance(nil, Self.reading(wall: 1000, cpu: 0, egress: 5_000)).state
        let step = advance(state, Self.reading(wall: 1005, cpu: 1_000_000_000, egress: 300, ifindex: 8))
        #expect(step.state.openUsage(.egressBytes) == 300)
        #expect(step.state.openUsage(.cpuNanoseconds) == 1_000_000_000)
        state = step.state
        let next = advance(state, Self.reading(wall: 1010, cpu: 2_000_000_000, egress: 1_300, ifindex: 8))
        #expect(next.state.openUsage(.egressBytes) == 1_300)
        #expect(next.gaps.isEmpty)
    }

    @Test func removalBillsTheFinalPartialPeriodOnce() throws {
        var state = advance(nil, Self.reading(wall: 1020, cpu: 0)).state
        state = advance(state, Self.reading(wall: 1051, cpu: 2_000_000_000)).state  // closes [1020, 1050)
        state = advance(state, Self.reading(wall: 1062.5, cpu: 7_500_000_000)).state
        let final = Meter.finish(state, identity: identity, configuration: configuration, timestamp: 1070)
        #expect(final.count == 1)
        #expect(final[0].period == Period(start: 1050, end: 1063))
        #expect(final[0].metrics.cpuSeconds == 5)
        // A stopped instance that is removed has nothing more to bill.
        let stopped = Meter.suspend(state, identity: identity, configuration: configuration, timestamp: 1050).state
        #expect(Meter.finish(stopped, identity: identity, configuration: configuration, timestamp: 1060).isEmpty)
    }

    @Test func passedThroughGPUsAreBilledForTheSecondsTheyAreAssignedWhileRunning() throws {
        var state = advance(nil, Self.reading(wall: 1000, cpu: 0, gpus: 2)).state
        state = advance(state, Self.reading(wall: 1010, cpu: 0, gpus: 2)).state
        #expect(state.openUsage(.gpuBusyNanoseconds) == 20_000_000_000)
        state = Meter.suspend(state, identity: identity, configuration: configuration, timestamp: 1010).state
        // The stopped span is not billed.
        state = advance(state, Self.reading(wall: 1500, cpu: 0, gpus: 2)).state
        #expect(state.openUsage(.gpuBusyNanoseconds) == 0)
        let closed = advance(state, Self.reading(wall: 1531, cpu: 0, gpus: 2))
        #expect(closed.events.first?.metrics.gpuSeconds == 62)
    }

    @Test func stateWithLifecycleFieldsRoundTripsAndOldCheckpointsStillDecode() throws {
        var state = advance(nil, Self.reading(wall: 1000, cpu: 0)).state
        state = Meter.suspend(state, identity: identity, configuration: configuration, timestamp: 1000).state
        state.identity = identity
        let data = try JSONEncoder().encode(state)
        #expect(try JSONDecoder().decode(MeterState.self, from: data) == state)
        // A checkpoint written before generations, stop and identity existed.
        let old = #"{"format":1,"boot_id":"b","last_wall_ns":1,"last_boot_ns":1,"counters":{"cpu_ns:cpu":{"value":5,"last_seen_boot_ns":1}},"period":{"start":0,"span_start_boot_ns":1,"usage":{},"memory_byte_seconds":0,"memory_percent_seconds":0,"gauge_seconds":0,"cpu_capacity":1},"cpu_carry_ns":0,"gpu_carry_ns":0}"#
        let decoded = try JSONDecoder().decode(MeterState.self, from: Data(old.utf8))
        #expect(decoded.isRunning)
        #expect(decoded.identity == nil)
        #expect(decoded.counters["cpu_ns:cpu"]?.generation == nil)
    }

    /// Conservation over random lives: the VM runs, stops and restarts (a new cgroup counting from
    /// zero), with samples at random moments. Σ cpu_seconds billed equals the CPU time every
    /// cgroup counted while the agent saw it, within one second, and no period overlaps another.
    @Test func everyCountedNanosecondIsBilledOnceAcrossStopsAndRestarts() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int.max)) { seed in
            var random = SplitMix64(state: UInt64(seed))
            var state: MeterState?
            var billedSeconds: Int64 = 0
            var expectedNanos: UInt64 = 0
            var periods: [Period] = []
            var wall = 1_000.0 + Double(random.next() % 30)
            var inode: UInt64 = 1
            var counter: UInt64 = 0
            var running = true
            var lastSeen: UInt64?  // the counter at the agent's latest sight of this cgroup
            for _ in 0..<200 {
                wall += 0.5 + Double(random.next() % 9_000) / 1_000
                switch random.next() % 20 {
                case 0 where running:
                    running = false  // stopped: the cgroup goes away
                    if let current = state {
                        let stop = Meter.suspend(current, identity: identity, configuration: configuration, timestamp: Int64(wall))
                        state = stop.state
                        billedSeconds += stop.events.reduce(0) { $0 + $1.metrics.cpuSeconds }
                        periods += stop.events.map(\.period)
                    }
                    lastSeen = nil
                    continue
                case 1 where !running:
                    running = true  // restarted: a new cgroup counting from zero
                    inode += 1
                    counter = 0
                default:
                    if !running { continue }
                }
                let used = random.next() % 3_000_000_000
                counter += used
                // Counted from zero for a new cgroup once the agent has a state for the instance.
                if let lastSeen { expectedNanos += counter - lastSeen } else if state != nil { expectedNanos += counter }
                lastSeen = counter
                let step = advance(state, Self.reading(wall: wall, cpu: counter, inode: inode))
                state = step.state
                billedSeconds += step.events.reduce(0) { $0 + $1.metrics.cpuSeconds }
                periods += step.events.map(\.period)
            }
            if let state {
                let final = Meter.finish(state, identity: identity, configuration: configuration, timestamp: Int64(wall))
                billedSeconds += final.reduce(0) { $0 + $1.metrics.cpuSeconds }
                periods += final.map(\.period)
            }
            let expectedSeconds = Int64(expectedNanos / 1_000_000_000)
            #expect(abs(billedSeconds - expectedSeconds) <= 1, "seed \(seed): billed \(billedSeconds), counted \(expectedNanos) ns")
            for (earlier, later) in zip(periods, periods.dropFirst()) {
                #expect(earlier.end <= later.start, "seed \(seed): \(earlier) overlaps \(later)")
                #expect(earlier.start < earlier.end)
            }
        }
    }
}

