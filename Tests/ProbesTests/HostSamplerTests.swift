import Testing

@testable import Probes

struct HostSamplerTests {
    private static let fixedClock = HostClock { SampleTime(wallNanos: 1_795_267_451_000_000_000, bootNanos: 340_820_000_000) }

    // MARK: The captured tree

    private func capturedSample(collectors: Set<CollectorName> = Set(CollectorName.allCases)) -> HostSample {
        let sampler = HostSampler(
            configuration: HostSamplerConfiguration(
                procRoot: Fixtures.linux618Proc, sysRoot: Fixtures.linux618Sys, userHZ: 100, collectors: collectors),
            clock: Self.fixedClock)
        return sampler.sample()
    }

    @Test func everyCollectorSucceedsOnTheCapturedTree() {
        let sample = capturedSample()
        #expect(sample.failures.isEmpty, "\(sample.failures)")
        #expect(sample.succeeded == CollectorName.allCases)
        #expect(sample.failedCollectors.isEmpty)
    }

    @Test func theCapturedTreeGivesItsValues() throws {
        let sample = capturedSample()
        #expect(sample.time == SampleTime(wallNanos: 1_795_267_451_000_000_000, bootNanos: 340_820_000_000))
        #expect(sample.bootID == "20945068-5d3d-4f19-967f-d2d6f9374361")
        #expect(sample.cpu?.cpuCount == 2)
        #expect(sample.cpu?.userHZ == 100)
        #expect(sample.memory?.totalBytes == 24_684_100 * 1024)
        #expect(sample.load?.lastPID == 4253)
        #expect(sample.uptime?.uptimeSeconds == 340.82)
    }

    @Test func onlyWholeRealDisksAreKept() {
        // loop0–7 and zram0 are whole disks in sys/block too; the default name filter drops them.
        #expect(capturedSample().disks?.map(\.name) == ["vda"])
    }

    @Test func loopbackIsLeftOutOfTheNetwork() {
        #expect(capturedSample().network?.map(\.name) == ["ifb0", "ifb1", "eth0"])
    }

    @Test func onlyTheRootFilesystemIsMetered() throws {
        // Everything else in the captured mountinfo is proc, sysfs, devtmpfs, tmpfs, devpts or cgroup.
        // Mount points are stat'ed under rootfs "/", which exists wherever the tests run.
        let filesystems = try #require(capturedSample().filesystems)
        #expect(filesystems.map(\.mountPoint) == ["/"])
        let root = try #require(filesystems.first)
        #expect(root.source == "/dev/vda")
        #expect(root.fsType == "ext4")
        #expect(root.major == 254)
        #expect(root.minor == 0)
        #expect(root.space.sizeBytes > 0)
    }

    @Test func everyCollectorIsTimedInCollectorOrder() {
        #expect(capturedSample().timings.map(\.collector) == CollectorName.allCases)
    }

    @Test func onlyTheConfiguredCollectorsRun() {
        let sample = capturedSample(collectors: [.memory, .cpu])
        #expect(sample.succeeded == [.cpu, .memory])
        #expect(sample.timings.map(\.collector) == [.cpu, .memory])
        #expect(sample.bootID == nil)
        #expect(sample.disks == nil)
        #expect(sample.network == nil)
    }

    // MARK: Broken trees

    @Test(arguments: [
        (CollectorName.boot, "sys/kernel/random/boot_id", 1),
        (.cpu, "stat", 1),
        (.memory, "meminfo", 1),
        (.disk, "diskstats", 1),
        (.filesystem, "self/mountinfo", 1),
        (.network, "net/dev", 1),
        (.load, "loadavg", 1),
        (.uptime, "uptime", 0),
    ])
    func everyCollectorFailsOnTheGarbageTreeNamingItsFile(collector: CollectorName, file: String, line: Int) throws {
        let sampler = HostSampler(
            configuration: HostSamplerConfiguration(
                procRoot: Fixtures.garbageProc, sysRoot: Fixtures.root + "/garbage/sys", userHZ: 100))
        let sample = sampler.sample()
        let failures = sample.failures.filter { $0.collector == collector }
        let failure = try #require(failures.first)
        #expect(failures.count == 1)
        guard case .malformed(let path, let errorLine, _) = failure.error else {
            Issue.record("expected .malformed, got \(failure.error)")
            return
        }
        #expect(path == Fixtures.garbageProc + "/" + file)
        #expect(errorLine == line)
        #expect(failure.description.hasPrefix("\(collector.rawValue): \(path)"))
    }

    @Test func nothingSucceedsOnTheGarbageTree() {
        let sampler = HostSampler(
            configuration: HostSamplerConfiguration(
                procRoot: Fixtures.garbageProc, sysRoot: Fixtures.root + "/garbage/sys", userHZ: 100))
        let sample = sampler.sample()
        #expect(sample.failedCollectors == CollectorName.allCases)
        #expect(sample.succeeded.isEmpty)
        #expect(sample.timings.count == CollectorName.allCases.count)
    }

    @Test func thePartialTreeKeepsWhatIsGoodAndNamesWhatIsNot() throws {
        let sampler = HostSampler(
            configuration: HostSamplerConfiguration(
                procRoot: Fixtures.partialProc, sysRoot: Fixtures.linux618Sys, userHZ: 100))
        let sample = sampler.sample()
        #expect(sample.succeeded == [.boot, .cpu, .memory, .filesystem, .network])
        #expect(sample.failedCollectors == [.disk, .load, .uptime])
        #expect(sample.cpu?.cpuCount == 2)
        // The meminfo of the partial tree stops early but still has MemTotal.
        #expect(sample.memory?.totalBytes == 24_684_100 * 1024)
        #expect(sample.network?.map(\.name) == ["ifb0", "ifb1", "eth0"])

        for (collector, file) in [(CollectorName.disk, "diskstats"), (.load, "loadavg")] {
            let failure = try #require(sample.failures.first { $0.collector == collector })
            guard case .malformed(let path, let line, _) = failure.error else {
                Issue.record("expected .malformed, got \(failure)")
                continue
            }
            #expect(path == Fixtures.partialProc + "/" + file)
            #expect(line == 1)
        }
        // There is no uptime file at all: ENOENT.
        let uptime = try #require(sample.failures.first { $0.collector == .uptime })
        #expect(uptime.error == .unreadable(path: Fixtures.partialProc + "/uptime", errno: 2))
    }

    @Test func aMissingProcRootFailsEveryCollectorAsUnreadable() {
        let missing = Fixtures.root + "/no-such-tree/proc"
        let sampler = HostSampler(
            configuration: HostSamplerConfiguration(procRoot: missing, sysRoot: missing, userHZ: 100))
        let sample = sampler.sample()
        #expect(sample.failedCollectors == CollectorName.allCases)
        for failure in sample.failures {
            guard case .unreadable(let path, let errno) = failure.error else {
                Issue.record("expected .unreadable, got \(failure)")
                continue
            }
            #expect(path.hasPrefix(missing + "/"))
            #expect(errno == 2)  // ENOENT
        }
    }

    // MARK: Configuration

    @Test func theDefaultInterfaceFilterLeavesOutOnlyLo() {
        let filter = HostSamplerConfiguration.defaultInterfaces
        #expect(!filter.selects("lo"))
        #expect(filter.selects("lo0"))
        #expect(filter.selects("eth0"))
    }

    @Test(arguments: [("/", "/"), ("/host/", "/host"), ("/host", "/host")])
    func rootfsLosesATrailingSlash(given: String, stored: String) {
        #expect(HostSamplerConfiguration(rootfs: given).rootfs == stored)
    }

    @Test func theDefaultConfigurationRunsEveryCollectorOnTheRealRoots() {
        let configuration = HostSamplerConfiguration()
        #expect(configuration.procRoot == "/proc")
        #expect(configuration.sysRoot == "/sys")
        #expect(configuration.collectors == Set(CollectorName.allCases))
        #expect(configuration.userHZ > 0)
    }
}
