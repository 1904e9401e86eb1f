import Foundation
import Probes
import Testing
import UsageModel

@testable import Metering

/// Table tests of the metering engine: each case a short, hand-checked sequence of readings.
@Suite struct MeterTests {
    static let boot = "11111111-1111-4111-8111-111111111111"
    static let otherBoot = "22222222-2222-4222-8222-222222222222"
    let identity = InstanceIdentity(instanceID: "vm-42", userID: "u-9", orgID: "org-1")
    let configuration = MeterConfiguration(hostID: "host-7", intervalSeconds: 30)

    /// A reading at wall second `wall` (+ `fraction`), boot second `uptime`, with CPU nanoseconds,
    /// tx/rx bytes of eth0 and memory used of a 10 GB host.
    static func reading(
        wall: Double, uptime: Double, cpu: UInt64? = nil, tx: UInt64? = nil, rx: UInt64? = nil,
        memory: UInt64? = nil, storage: UInt64? = nil, capacity: Double = 2, boot: String = boot
    ) -> InstanceReading {
        var counters: [CounterSource: UInt64] = [:]
        if let cpu { counters[CounterSource(.cpuNanoseconds, "cpu")] = cpu }
        if let tx { counters[CounterSource(.egressBytes, "eth0")] = tx }
        if let rx { counters[CounterSource(.ingressBytes, "eth0")] = rx }
        return InstanceReading(
            time: SampleTime(wallNanos: Int64(wall * 1e9), bootNanos: UInt64(uptime * 1e9)), bootID: boot,
            counters: counters, cpuCapacity: capacity, memoryUsedBytes: memory,
            memoryTotalBytes: memory == nil ? nil : 10_000_000_000, storageUsedBytes: storage)
    }

    /// Runs readings through the engine from no state, returning every step.
    func run(_ readings: [InstanceReading], from state: MeterState? = nil) -> [MeterStep] {
        var state = state
        var steps: [MeterStep] = []
        for reading in readings {
            let step = Meter.advance(state, with: reading, identity: identity, configuration: configuration)
            state = step.state
            steps.append(step)
        }
        return steps
    }

    @Test func firstReadingIsABaselineAndBillsNothing() throws {
        let step = Meter.advance(
            nil, with: Self.reading(wall: 1000.4, uptime: 50, cpu: 7_000_000_000), identity: identity,
            configuration: configuration)
        #expect(step.events.isEmpty)
        #expect(step.state.period.start == 1000)
        let baseline = try #require(step.baseline)
        #expect(baseline.counters["cpu_ns:cpu"] == 7_000_000_000)
        #expect(baseline.bootID == Self.boot)
    }

    @Test func closesAlignedPeriodsWithExactDeltasAndCarry() throws {
        let steps = run([
            Self.reading(wall: 1205, uptime: 100, cpu: 0, tx: 1_000, rx: 10),
            Self.reading(wall: 1215.001, uptime: 110, cpu: 1_000_000_000, tx: 2_000, rx: 20),
            Self.reading(wall: 1230.002, uptime: 125, cpu: 2_500_000_000, tx: 1_823_000, rx: 440_010),
            Self.reading(wall: 1260.003, uptime: 155, cpu: 4_200_000_000, tx: 1_823_000, rx: 440_010),
        ])
        let events = steps.flatMap(\.events)
        #expect(events.map(\.period) == [Period(start: 1205, end: 1230), Period(start: 1230, end: 1260)])
        // 2.5 s → 2 billed, 0.5 carried; then 1.7 + 0.5 = 2.2 → 2 billed, 0.2 carried.
        #expect(events.map(\.metrics.cpuSeconds) == [2, 2])
        #expect(steps.last?.state.cpuCarryNanos == 200_000_000)
        #expect(events[0].metrics.networkEgressMB == 1.822)
        #expect(events[0].metrics.networkIngressMB == 0.44)
        #expect(events[1].metrics.networkEgressMB == 0)
        #expect(events[0].hostID == "host-7")
        #expect(events[0].instanceID == "vm-42")
        #expect(events[0].userID == "u-9")
        #expect(events[0].orgID == "org-1")
        #expect(events[0].timestamp == 1230)
        #expect(events[0].eventID == UsageEvent.eventID(hostID: "host-7", instanceID: "vm-42", period: events[0].period))
    }

    @Test func cpuPercentIsExactCPUTimeOverSpanAndCapacity() throws {
        // 15 s of CPU over a 30 s span on 2 CPUs: 25 %.
        let steps = run([
            Self.reading(wall: 990, uptime: 100, cpu: 0),
            Self.reading(wall: 1020, uptime: 130, cpu: 15_000_000_000, capacity: 2),
        ])
        let event = try #require(steps.last?.events.first)
        #expect(event.metrics.cpuPercentAvg == 25)
        #expect(event.metrics.cpuSeconds == 15)
    }

    @Test func memoryIsTimeWeightedOverThePeriodsSamples() throws {
        // 1 GB for 10 s, then rising linearly to 4 GB over 20 s: (10·1 + 20·2.5) / 30 = 2 GB.
        let steps = run([
            Self.reading(wall: 990, uptime: 100, memory: 1_000_000_000),
            Self.reading(wall: 1000, uptime: 110, memory: 1_000_000_000),
            Self.reading(wall: 1020, uptime: 130, memory: 4_000_000_000, storage: 20_400_000_000),
        ])
        let event = try #require(steps.last?.events.first)
        #expect(event.metrics.memoryGB == 2)
        #expect(event.metrics.memoryPercent == 20)
        #expect(event.metrics.storageGB == 20.4)
    }

    @Test func aCounterThatGoesDownIsAResetNotANegativeDelta() throws {
        let steps = run([
            Self.reading(wall: 1000, uptime: 100, cpu: 5_000_000_000, tx: 900_000),
            Self.reading(wall: 1010, uptime: 110, cpu: 6_000_000_000, tx: 1_000),  // interface recreated
            Self.reading(wall: 1030, uptime: 130, cpu: 7_000_000_000, tx: 501_000),
        ])
        let gap = try #require(steps[1].gaps.first)
        #expect(gap.reason == .counterReset)
        #expect(gap.detail.contains("egress_bytes:eth0"))
        let event = try #require(steps[2].events.first)
        #expect(event.metrics.networkEgressMB == 0.5)
        #expect(event.metrics.cpuSeconds == 2)
    }

    @Test func rebootBillsTheOldBootsPartialPeriodRecordsTheGapAndStartsAgain() throws {
        let steps = run([
            Self.reading(wall: 1195, uptime: 1000, cpu: 100_000_000_000),
            Self.reading(wall: 1200.5, uptime: 1005.5, cpu: 101_000_000_000),  // closes [1195, 1200)
            Self.reading(wall: 1212.2, uptime: 1017.2, cpu: 103_500_000_000),  // last sample of the old boot
            Self.reading(wall: 1300.7, uptime: 20, cpu: 4_000_000_000, boot: Self.otherBoot),
            Self.reading(wall: 1320.1, uptime: 39.4, cpu: 5_000_000_000, boot: Self.otherBoot),
        ])
        #expect(steps[1].events.map(\.period) == [Period(start: 1195, end: 1200)])
        let reboot = steps[3]
        // The old boot's open period is billed up to its last sample, rounded up to the second.
        #expect(reboot.events.map(\.period) == [Period(start: 1200, end: 1213)])
        #expect(reboot.events.first?.metrics.cpuSeconds == 2)
        #expect(reboot.gaps == [
            MeteringGap(instanceID: "vm-42", reason: .reboot, from: 1213, to: 1300,
                        detail: "boot \(Self.boot) → \(Self.otherBoot)")
        ])
        #expect(reboot.baseline?.bootID == Self.otherBoot)
        #expect(reboot.state.period.start == 1300)
        // The new boot's counters are a new baseline: 1 s since the first sample, plus the carried 0.5 s.
        #expect(steps[4].events.map(\.period) == [Period(start: 1300, end: 1320)])
        #expect(steps[4].events.first?.metrics.cpuSeconds == 1)
        #expect(steps[4].state.cpuCarryNanos == 500_000_000)
    }

    @Test func restartOnTheSameBootBillsTheDowntimeInTheNextEvent() throws {
        let before = run([
            Self.reading(wall: 1195, uptime: 100, cpu: 0),
            Self.reading(wall: 1200.2, uptime: 105.2, cpu: 1_000_000_000),
        ])
        // The agent is down from 1200.2 to 1295.3; the checkpoint comes back from storage.
        let checkpoint = try JSONDecoderRoundTrip.roundTrip(before.last!.state)
        let after = run([Self.reading(wall: 1295.3, uptime: 200.3, cpu: 40_000_000_000)], from: checkpoint)
        let event = try #require(after.first?.events.first)
        #expect(event.period == Period(start: 1200, end: 1290))
        #expect(event.metrics.cpuSeconds == 39)
        #expect(after.first?.gaps.isEmpty == true)
        #expect(after.first?.baseline == nil)
    }

    @Test func wallClockSteppingBackNeverOverlapsPeriods() throws {
        let steps = run([
            Self.reading(wall: 1200, uptime: 100, cpu: 0),
            Self.reading(wall: 1230, uptime: 130, cpu: 3_000_000_000),  // closes [1200, 1230)
            Self.reading(wall: 1150, uptime: 160, cpu: 6_000_000_000),  // NTP steps back 80 s
            Self.reading(wall: 1245, uptime: 255, cpu: 15_000_000_000),
            Self.reading(wall: 1261, uptime: 271, cpu: 16_000_000_000),  // closes [1230, 1260)
        ])
        let events = steps.flatMap(\.events)
        #expect(events.map(\.period) == [Period(start: 1200, end: 1230), Period(start: 1230, end: 1260)])
        // Nothing lost: the second period absorbed the repeated seconds' usage.
        #expect(events.map(\.metrics.cpuSeconds) == [3, 13])
        // Percent is measured on the boot clock: 13 s over 141 s on 2 CPUs.
        #expect(abs(events[1].metrics.cpuPercentAvg - 13.0 / (141 * 2) * 100) < 0.001)
    }

    @Test func wallClockSteppingForwardClosesOneLongerPeriod() throws {
        let steps = run([
            Self.reading(wall: 1200, uptime: 100, cpu: 0),
            Self.reading(wall: 1230, uptime: 130, cpu: 3_000_000_000),
            Self.reading(wall: 4830, uptime: 160, cpu: 6_000_000_000),  // clock jumps an hour ahead
        ])
        let events = steps.flatMap(\.events)
        #expect(events.map(\.period) == [Period(start: 1200, end: 1230), Period(start: 1230, end: 4830)])
        #expect(events.map(\.metrics.cpuSeconds) == [3, 3])
        #expect(events[1].metrics.cpuPercentAvg == 5)
    }

    @Test func aStaleReadingIsIgnored() throws {
        let steps = run([
            Self.reading(wall: 1000, uptime: 100, cpu: 5_000_000_000),
            Self.reading(wall: 1001, uptime: 99, cpu: 1_000_000_000),
        ])
        #expect(steps[1].state == steps[0].state)
        #expect(steps[1].gaps.isEmpty)
    }

    @Test func aMissingCounterKeepsItsBaselineAndCountsAcrossTheHole() throws {
        let steps = run([
            Self.reading(wall: 1000, uptime: 100, cpu: 0),
            Self.reading(wall: 1010, uptime: 110, cpu: nil),  // cpu collector failed this time
            Self.reading(wall: 1030, uptime: 130, cpu: 9_000_000_000),
        ])
        #expect(steps.last?.events.first?.metrics.cpuSeconds == 9)
    }

    @Test(arguments: [1, 7, 30, 60, 3600])
    func periodsEndOnWallClockMultiplesOfTheInterval(interval: Int) throws {
        let configuration = MeterConfiguration(hostID: "h", intervalSeconds: Int64(interval))
        var state: MeterState?
        var events: [UsageEvent] = []
        for second in stride(from: 1_000_003, to: 1_000_003 + interval * 5, by: max(1, interval / 3)) {
            let step = Meter.advance(
                state, with: Self.reading(wall: Double(second) + 0.25, uptime: Double(second - 1_000_000), cpu: 0),
                identity: identity, configuration: configuration)
            state = step.state
            events += step.events
        }
        #expect(!events.isEmpty)
        for event in events {
            #expect(event.period.end % Int64(interval) == 0)
        }
        for (earlier, later) in zip(events, events.dropFirst()) {
            #expect(later.period.start == earlier.period.end)
            #expect(later.period.start % Int64(interval) == 0)
        }
    }

    @Test(arguments: [
        (UInt64(100), 100, UInt64(1_000_000_000)),
        (UInt64(1), 100, UInt64(10_000_000)),
        (UInt64(3), 300, UInt64(10_000_000)),
        (UInt64(1), 300, UInt64(3_333_333)),
        (UInt64(1_000_000_000_000), 100, UInt64(10_000_000_000_000_000_000)),
    ])
    func ticksConvertToNanoseconds(ticks: UInt64, userHZ: Int, nanos: UInt64) {
        #expect(InstanceReading.nanoseconds(ticks: ticks, userHZ: userHZ) == nanos)
    }

    @Test func hostReadingMapsTheSample() throws {
        var sample = HostSample(time: SampleTime(wallNanos: 5_000_000_000, bootNanos: 7))
        sample.bootID = Self.boot
        sample.cpu = Stat(
            total: CPUTicks(user: 100, nice: 0, system: 50, idle: 1000, iowait: 30, irq: 0, softirq: 0, steal: 0, guest: 40),
            perCPU: [PerCPUStat(id: 0, ticks: CPUTicks(user: 0, nice: 0, system: 0, idle: 0)),
                     PerCPUStat(id: 1, ticks: CPUTicks(user: 0, nice: 0, system: 0, idle: 0))],
            bootTime: nil, userHZ: 100)
        sample.memory = Meminfo(fields: ["MemTotal": 1000, "MemAvailable": 400])
        sample.network = [
            NetDevStats(name: "eth0", rxBytes: 11, rxPackets: 0, rxErrors: 0, rxDropped: 0, rxFifo: 0, rxFrame: 0,
                        rxCompressed: 0, rxMulticast: 0, txBytes: 22, txPackets: 0, txErrors: 0, txDropped: 0,
                        txFifo: 0, txCollisions: 0, txCarrier: 0, txCompressed: 0)
        ]
        sample.filesystems = [
            FilesystemUsage(mountPoint: "/", source: "/dev/vda", fsType: "ext4", major: 254, minor: 0,
                            space: FilesystemSpace(sizeBytes: 100, usedBytes: 30, availableBytes: 70, files: 0, filesFree: 0)),
            FilesystemUsage(mountPoint: "/data", source: "/dev/vdb", fsType: "xfs", major: 254, minor: 16,
                            space: FilesystemSpace(sizeBytes: 100, usedBytes: 12, availableBytes: 88, files: 0, filesFree: 0)),
        ]
        let reading = try #require(InstanceReading.host(sample))
        // busy = user + nice + system (+ irq, softirq, steal); guest is inside user, iowait is idle.
        #expect(reading.counters[CounterSource(.cpuNanoseconds, "cpu")] == 1_500_000_000)
        #expect(reading.counters[CounterSource(.egressBytes, "eth0")] == 22)
        #expect(reading.counters[CounterSource(.ingressBytes, "eth0")] == 11)
        #expect(reading.cpuCapacity == 2)
        #expect(reading.memoryUsedBytes == 600)
        #expect(reading.storageUsedBytes == 42)

        sample.bootID = nil
        #expect(InstanceReading.host(sample) == nil)
    }
}

/// Persists and reloads a checkpoint the way the agent does, through JSON.
enum JSONDecoderRoundTrip {
    static func roundTrip(_ state: MeterState) throws -> MeterState {
        try JSONDecoder().decode(MeterState.self, from: JSONEncoder().encode(state))
    }
}
