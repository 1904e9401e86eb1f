#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where and what a `HostSampler` reads.
public struct HostSamplerConfiguration: Sendable, Equatable {
    public var procRoot: String
    public var sysRoot: String
    public var rootfs: String
    /// Ticks per second of /proc/stat; the running kernel's `sysconf(_SC_CLK_TCK)` by default.
    public var userHZ: Int
    public var collectors: Set<CollectorName>
    public var disks: DiskSelection
    /// Interfaces of /proc/net/dev; `lo` is left out by default since loopback traffic never leaves the host.
    public var interfaces: NameFilter
    public var filesystems: FilesystemSelection

    public init(
        procRoot: String = "/proc", sysRoot: String = "/sys", rootfs: String = "/",
        userHZ: Int = HostSamplerConfiguration.systemUserHZ,
        collectors: Set<CollectorName> = Set(CollectorName.allCases),
        disks: DiskSelection = DiskSelection(),
        interfaces: NameFilter = HostSamplerConfiguration.defaultInterfaces,
        filesystems: FilesystemSelection = FilesystemSelection()
    ) {
        self.procRoot = procRoot
        self.sysRoot = sysRoot
        self.rootfs = rootfs.count > 1 && rootfs.hasSuffix("/") ? String(rootfs.dropLast()) : rootfs
        self.userHZ = userHZ
        self.collectors = collectors
        self.disks = disks
        self.interfaces = interfaces
        self.filesystems = filesystems
    }

    public static let defaultInterfaces = NameFilter(exclude: ["lo"])

    public static var systemUserHZ: Int {
        let value = sysconf(Int32(_SC_CLK_TCK))
        return value > 0 ? value : 100
    }
}

/// Takes host samples: runs every enabled collector, timing each and isolating its failure.
public struct HostSampler: Sendable {
    public let configuration: HostSamplerConfiguration
    public let collectors: [any Collector]
    public let clock: HostClock

    public init(configuration: HostSamplerConfiguration = HostSamplerConfiguration(), clock: HostClock = .system) {
        self.configuration = configuration
        self.clock = clock
        let procFS = ProcFS(root: configuration.procRoot)
        let sysFS = SysFS(root: configuration.sysRoot)
        self.collectors = CollectorName.allCases.filter(configuration.collectors.contains).map { name in
            switch name {
            case .boot: BootCollector(procFS: procFS)
            case .cpu: CPUCollector(procFS: procFS, userHZ: configuration.userHZ)
            case .memory: MemoryCollector(procFS: procFS)
            case .disk: DiskCollector(procFS: procFS, sysFS: sysFS, selection: configuration.disks)
            case .filesystem:
                FilesystemCollector(procFS: procFS, rootfs: configuration.rootfs, selection: configuration.filesystems)
            case .network: NetworkCollector(procFS: procFS, interfaces: configuration.interfaces)
            case .load: LoadCollector(procFS: procFS)
            case .uptime: UptimeCollector(procFS: procFS)
            }
        }
    }

    /// One pass over all collectors. Never throws: failures are in `HostSample.failures`.
    public func sample() -> HostSample {
        var sample = HostSample(time: clock.now())
        sample.timings.reserveCapacity(collectors.count)
        for collector in collectors {
            let start = HostClock.monotonicNanos()
            do {
                try collector.collect(into: &sample)
            } catch {
                sample.failures.append(CollectorFailure(collector: collector.name, error: error))
            }
            sample.timings.append(
                CollectorTiming(collector: collector.name, nanoseconds: HostClock.monotonicNanos() - start))
        }
        return sample
    }
}
