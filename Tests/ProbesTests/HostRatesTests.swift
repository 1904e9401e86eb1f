import Testing

@testable import Probes

struct HostRatesTests {
    // MARK: Building samples by hand

    private func sample(atSeconds seconds: UInt64, bootID: String? = "boot-a") -> HostSample {
        var sample = HostSample(
            time: SampleTime(wallNanos: 1_800_000_000_000_000_000 + Int64(seconds) * 1_000_000_000,
                             bootNanos: seconds * 1_000_000_000))
        sample.bootID = bootID
        return sample
    }

    private func ticks(
        user: UInt64 = 0, nice: UInt64 = 0, system: UInt64 = 0, idle: UInt64 = 0, iowait: UInt64 = 0,
        steal: UInt64 = 0, guest: UInt64 = 0
    ) -> CPUTicks {
        CPUTicks(
            user: user, nice: nice, system: system, idle: idle, iowait: iowait, irq: 0, softirq: 0, steal: steal,
            guest: guest, guestNice: 0)
    }

    private func stat(_ total: CPUTicks, perCPU: [(Int, CPUTicks)] = []) -> Stat {
        Stat(total: total, perCPU: perCPU.map { PerCPUStat(id: $0.0, ticks: $0.1) }, bootTime: nil, userHZ: 100)
    }

    private func disk(
        _ name: String, major: UInt32 = 8, minor: UInt32 = 0, reads: UInt64, sectorsRead: UInt64, writes: UInt64,
        sectorsWritten: UInt64
    ) -> DiskStats {
        DiskStats(
            major: major, minor: minor, name: name, readsCompleted: reads, readsMerged: 0, sectorsRead: sectorsRead,
            readTimeMilliseconds: 0, writesCompleted: writes, writesMerged: 0, sectorsWritten: sectorsWritten,
            writeTimeMilliseconds: 0, ioInProgress: 0, ioTimeMilliseconds: 0, weightedIOTimeMilliseconds: 0)
    }

    private func interface(
        _ name: String, rxBytes: UInt64, txBytes: UInt64, rxPackets: UInt64 = 0, txPackets: UInt64 = 0
    ) -> NetDevStats {
        NetDevStats(
            name: name, rxBytes: rxBytes, rxPackets: rxPackets, rxErrors: 0, rxDropped: 0, rxFifo: 0, rxFrame: 0,
            rxCompressed: 0, rxMulticast: 0, txBytes: txBytes, txPackets: txPackets, txErrors: 0, txDropped: 0,
            txFifo: 0, txCollisions: 0, txCarrier: 0, txCompressed: 0)
    }

    private func cpuRates(from old: CPUTicks, to new: CPUTicks) throws -> CPUModePercents? {
        var before = sample(atSeconds: 10)
        before.cpu = stat(old)
        var after = sample(atSeconds: 20)
        after.cpu = stat(new)
        return try #require(HostRates(from: before, to: after)).cpu
    }

    // MARK: CPU

    @Test func cpuPercentsComeFromTickDeltas() throws {
        // 100 ticks of user and 300 of idle out of 400.
        let percents = try #require(
            try cpuRates(
                from: ticks(user: 1000, system: 500, idle: 2000, iowait: 10),
                to: ticks(user: 1100, system: 500, idle: 2300, iowait: 10)))
        #expect(percents.modes == [25, 0, 0, 75, 0, 0, 0, 0, 0, 0])
        #expect(percents.busy == 25)
    }

    @Test func iowaitCountsAsIdleAndStealAsBusy() throws {
        let percents = try #require(
            try cpuRates(from: ticks(), to: ticks(user: 40, system: 20, idle: 100, iowait: 20, steal: 20)))
        #expect(percents.modes[4] == 10)
        #expect(percents.modes[7] == 10)
        #expect(percents.busy == 40)
    }

    @Test func guestTimeInsideUserIsNotCountedTwice() throws {
        // 100 ticks of user, 50 of them running a guest, and 100 idle: 200 ticks in all, not 250.
        let percents = try #require(try cpuRates(from: ticks(), to: ticks(user: 100, idle: 100, guest: 50)))
        #expect(percents.modes[0] == 50)
        #expect(percents.modes[8] == 25)
        #expect(percents.busy == 50)
    }

    @Test func columnsAnOldKernelLacksHaveNoPercent() throws {
        let percents = try #require(
            try cpuRates(
                from: CPUTicks(user: 0, nice: 0, system: 0, idle: 0),
                to: CPUTicks(user: 30, nice: 10, system: 10, idle: 50)))
        #expect(percents.modes == [30, 10, 10, 50, nil, nil, nil, nil, nil, nil])
        #expect(percents.busy == 50)
    }

    @Test func perCPUPercentsArePairedByCPUId() throws {
        var before = sample(atSeconds: 10)
        before.cpu = stat(ticks(user: 100, idle: 100), perCPU: [(0, ticks(user: 100)), (2, ticks(idle: 100))])
        var after = sample(atSeconds: 20)
        // CPU 1 came online between the samples: it has nothing to compare with.
        after.cpu = stat(
            ticks(user: 150, idle: 250),
            perCPU: [(0, ticks(user: 150, idle: 50)), (1, ticks(idle: 10)), (2, ticks(idle: 200))])
        let rates = try #require(HostRates(from: before, to: after))
        #expect(rates.perCPU.map(\.id) == [0, 2])
        #expect(rates.perCPU[0].percents.busy == 50)
        #expect(rates.perCPU[1].percents.busy == 0)
        #expect(rates.perCPU[1].percents.modes[3] == 100)
    }

    @Test func aCPUCounterThatGoesDownGivesNoRateForThatCPU() throws {
        var before = sample(atSeconds: 10)
        before.cpu = stat(ticks(user: 500, idle: 500), perCPU: [(0, ticks(user: 300, idle: 200)), (1, ticks(idle: 100))])
        var after = sample(atSeconds: 20)
        after.cpu = stat(ticks(user: 400, idle: 700), perCPU: [(0, ticks(user: 200, idle: 300)), (1, ticks(idle: 200))])
        let rates = try #require(HostRates(from: before, to: after))
        #expect(rates.cpu == nil)
        #expect(rates.perCPU.map(\.id) == [1])
    }

    @Test func noTicksBetweenTheSamplesGivesNoCPUPercents() throws {
        #expect(try cpuRates(from: ticks(user: 5, idle: 5), to: ticks(user: 5, idle: 5)) == nil)
    }

    @Test func aSampleWithoutCPUGivesNoCPURates() throws {
        var before = sample(atSeconds: 10)
        before.cpu = stat(ticks(user: 1, idle: 1))
        let rates = try #require(HostRates(from: before, to: sample(atSeconds: 20)))
        #expect(rates.cpu == nil)
        #expect(rates.perCPU.isEmpty)
    }

    // MARK: Which pairs of samples have rates

    @Test func samplesOfDifferentBootsHaveNoRates() {
        #expect(HostRates(from: sample(atSeconds: 10, bootID: "boot-a"), to: sample(atSeconds: 20, bootID: "boot-b")) == nil)
    }

    @Test(arguments: [UInt64(10), 9])
    func samplesNotInTimeOrderHaveNoRates(laterSeconds: UInt64) {
        #expect(HostRates(from: sample(atSeconds: 10), to: sample(atSeconds: laterSeconds)) == nil)
    }

    @Test func elapsedTimeIsOnTheBootClock() throws {
        var before = sample(atSeconds: 10)
        before.time.wallNanos = 0  // the wall clock stepped; the boot clock did not
        let rates = try #require(HostRates(from: before, to: sample(atSeconds: 12)))
        #expect(rates.elapsedSeconds == 2)
    }

    // MARK: Disks

    @Test func diskBytesAndOperationsPerSecond() throws {
        var before = sample(atSeconds: 10)
        before.disks = [disk("sda", reads: 100, sectorsRead: 8000, writes: 40, sectorsWritten: 4000)]
        var after = sample(atSeconds: 20)
        after.disks = [disk("sda", reads: 150, sectorsRead: 10000, writes: 60, sectorsWritten: 5000)]
        let rates = try #require(HostRates(from: before, to: after))
        #expect(
            rates.disks == [
                DiskRate(
                    name: "sda", readBytesPerSecond: 2000 * 512 / 10, writeBytesPerSecond: 1000 * 512 / 10,
                    readsPerSecond: 5, writesPerSecond: 2)
            ])
    }

    @Test func disksWithoutAComparableEarlierValueHaveNoRate() throws {
        var before = sample(atSeconds: 10)
        before.disks = [
            disk("sda", reads: 10, sectorsRead: 10, writes: 10, sectorsWritten: 10),
            disk("sdb", reads: 10, sectorsRead: 10, writes: 10, sectorsWritten: 10),
            disk("sdc", major: 8, minor: 32, reads: 10, sectorsRead: 10, writes: 10, sectorsWritten: 10),
        ]
        var after = sample(atSeconds: 20)
        after.disks = [
            disk("sda", reads: 20, sectorsRead: 20, writes: 20, sectorsWritten: 20),
            // Written sectors went down: reset or a different device.
            disk("sdb", reads: 20, sectorsRead: 20, writes: 20, sectorsWritten: 5),
            // Same name, another device number: a different disk took the name.
            disk("sdc", major: 8, minor: 48, reads: 20, sectorsRead: 20, writes: 20, sectorsWritten: 20),
            // New since the first sample.
            disk("sdd", reads: 20, sectorsRead: 20, writes: 20, sectorsWritten: 20),
        ]
        let rates = try #require(HostRates(from: before, to: after))
        #expect(rates.disks.map(\.name) == ["sda"])
    }

    // MARK: Interfaces

    @Test func interfaceBytesAndPacketsPerSecond() throws {
        var before = sample(atSeconds: 10)
        before.network = [
            interface("eth0", rxBytes: 5903, txBytes: 5713, rxPackets: 41, txPackets: 61),
            interface("eth1", rxBytes: 0, txBytes: 0),
        ]
        var after = sample(atSeconds: 20)
        after.network = [
            interface("eth0", rxBytes: 15903, txBytes: 10713, rxPackets: 141, txPackets: 111),
            interface("eth1", rxBytes: 100, txBytes: 0),
        ]
        let rates = try #require(HostRates(from: before, to: after))
        #expect(
            rates.interfaces == [
                InterfaceRate(
                    name: "eth0", rxBytesPerSecond: 1000, txBytesPerSecond: 500, rxPacketsPerSecond: 10,
                    txPacketsPerSecond: 5),
                InterfaceRate(
                    name: "eth1", rxBytesPerSecond: 10, txBytesPerSecond: 0, rxPacketsPerSecond: 0,
                    txPacketsPerSecond: 0),
            ])
    }

    @Test func anInterfaceWhoseCounterWentDownOrThatIsNewHasNoRate() throws {
        var before = sample(atSeconds: 10)
        before.network = [
            interface("eth0", rxBytes: 1000, txBytes: 1000),
            interface("veth1", rxBytes: 1000, txBytes: 1000),
            interface("gone0", rxBytes: 1, txBytes: 1),
        ]
        var after = sample(atSeconds: 20)
        after.network = [
            interface("eth0", rxBytes: 2000, txBytes: 2000),
            interface("veth1", rxBytes: 10, txBytes: 2000),  // removed and re-added
            interface("new0", rxBytes: 5, txBytes: 5),
        ]
        let rates = try #require(HostRates(from: before, to: after))
        #expect(rates.interfaces.map(\.name) == ["eth0"])
    }

    @Test func ratesBetweenTwoReadsOfTheCapturedTreeAreZero() throws {
        let sampler = HostSampler(
            configuration: HostSamplerConfiguration(
                procRoot: Fixtures.linux618Proc, sysRoot: Fixtures.linux618Sys, userHZ: 100,
                collectors: [.boot, .cpu, .disk, .network]))
        var before = sampler.sample()
        before.time = SampleTime(wallNanos: 0, bootNanos: 1_000_000_000)
        var after = sampler.sample()
        after.time = SampleTime(wallNanos: 0, bootNanos: 2_000_000_000)
        let rates = try #require(HostRates(from: before, to: after))
        // Identical counters: no CPU time passed, no bytes moved.
        #expect(rates.cpu == nil)
        #expect(rates.disks.map(\.readBytesPerSecond) == [0])
        #expect(rates.interfaces.map(\.name) == ["ifb0", "ifb1", "eth0"])
        #expect(rates.interfaces.allSatisfy { $0.rxBytesPerSecond == 0 && $0.txBytesPerSecond == 0 })
    }
}
