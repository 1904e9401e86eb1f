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

/// Where the host collectors read: what each collector's factory gets.
public struct CollectorSources: Sendable {
    public let configuration: HostSamplerConfiguration
    public let procFS: ProcFS
    public let sysFS: SysFS
}

/// Takes host samples: runs every enabled collector, timing each and isolating its failure.
public struct HostSampler: Sendable {
    public let configuration: HostSamplerConfiguration
    /// The enabled collectors, in `CollectorName` order, with their names.
    public let collectors: [(kind: CollectorName, collector: any Collector<HostSample>)]
    public let clock: HostClock

    /// Every host collector by name, as node_exporter registers its collectors: a new collector
    /// is a case of `CollectorName` and an entry here (`HostSamplerTests` checks that every name
    /// has one).
    static let registry: [CollectorName: @Sendable (CollectorSources) -> any Collector<HostSample>] = [
        .boot: { BootCollector(procFS: $0.procFS) },
        .cpu: { CPUCollector(procFS: $0.procFS, userHZ: $0.configuration.userHZ) },
        .memory: { MemoryCollector(procFS: $0.procFS) },
        .disk: { DiskCollector(procFS: $0.procFS, sysFS: $0.sysFS, selection: $0.configuration.disks) },
        .filesystem: {
            FilesystemCollector(
                procFS: $0.procFS, rootfs: $0.configuration.rootfs, selection: $0.configuration.filesystems)
        },
        .network: { NetworkCollector(procFS: $0.procFS, interfaces: $0.configuration.interfaces) },
        .load: { LoadCollector(procFS: $0.procFS) },
        .uptime: { UptimeCollector(procFS: $0.procFS) },
    ]

    public init(configuration: HostSamplerConfiguration = HostSamplerConfiguration(), clock: HostClock = .system) {
        self.configuration = configuration
        self.clock = clock
        let sources = CollectorSources(
            configuration: configuration, procFS: ProcFS(root: configuration.procRoot),
            sysFS: SysFS(root: configuration.sysRoot))
        // In `CollectorName` order, whatever order the configuration lists them in.
        self.collectors = CollectorName.allCases.filter(configuration.collectors.contains).compactMap { kind in
            Self.registry[kind].map { (kind, $0(sources)) }
        }
    }

    /// One pass over all collectors. Never throws: failures are in `HostSample.failures`.
    public func sample() -> HostSample {
        var sample = HostSample(time: clock.now())
        let reports = CollectorRun.run(collectors.map(\.collector), into: &sample)
        sample.timings.reserveCapacity(reports.count)
        for ((kind, _), report) in zip(collectors, reports) {
            if let error = report.error {
                sample.failures.append(CollectorFailure(collector: kind, error: error))
            }
            sample.timings.append(CollectorTiming(collector: kind, nanoseconds: report.nanoseconds))
        }
        return sample
    }
}
