/// The collectors of a host sample. The raw value is the name used in configuration, logs
/// (`collector.name`) and metric labels.
public enum CollectorName: String, Sendable, CaseIterable, Codable, Comparable {
    case boot
    case cpu
    case memory
    case disk
    case filesystem
    case network
    case load
    case uptime

    public static func < (lhs: CollectorName, rhs: CollectorName) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// A collector that could not deliver (all of its data, or one item of it) in a sample.
public struct CollectorFailure: Sendable, Equatable, Error, CustomStringConvertible {
    public var collector: CollectorName
    public var error: ProbeError

    public init(collector: CollectorName, error: ProbeError) {
        self.collector = collector
        self.error = error
    }

    public var description: String { "\(collector.rawValue): \(error)" }
}

/// When a sample was taken, on two clocks.
public struct SampleTime: Sendable, Equatable, Hashable {
    /// CLOCK_REALTIME in nanoseconds since the unix epoch: what periods are labelled with.
    /// It can step (NTP, an operator); never use it for durations.
    public var wallNanos: Int64
    /// CLOCK_BOOTTIME in nanoseconds: monotonic, counts suspend, starts at zero on every boot, and is
    /// shared by all processes, so durations measured on it survive an agent restart on the same boot.
    public var bootNanos: UInt64

    public init(wallNanos: Int64, bootNanos: UInt64) {
        self.wallNanos = wallNanos
        self.bootNanos = bootNanos
    }

    public var wallSeconds: Double { Double(wallNanos) / 1e9 }
}

/// How long one collector took in a sample.
public struct CollectorTiming: Sendable, Equatable {
    public var collector: CollectorName
    public var nanoseconds: UInt64
}

/// A filesystem selected for metering, with its space.
public struct FilesystemUsage: Sendable, Equatable {
    public var mountPoint: String
    public var source: String
    public var fsType: String
    public var major: UInt32
    public var minor: UInt32
    public var space: FilesystemSpace

    public init(mountPoint: String, source: String, fsType: String, major: UInt32, minor: UInt32, space: FilesystemSpace) {
        self.mountPoint = mountPoint
        self.source = source
        self.fsType = fsType
        self.major = major
        self.minor = minor
        self.space = space
    }
}

/// Everything one pass of the collectors read from the host.
///
/// A collector that failed leaves its field nil and adds a `CollectorFailure`; the rest of the
/// sample is still good. Counters are cumulative as the kernel keeps them; rates and deltas are
/// computed between samples (`HostRates`, and the metering engine).
public struct HostSample: Sendable, Equatable {
    public var time: SampleTime
    public var bootID: String?
    public var cpu: Stat?
    public var memory: Meminfo?
    public var disks: [DiskStats]?
    public var filesystems: [FilesystemUsage]?
    public var network: [NetDevStats]?
    public var load: LoadAvg?
    public var uptime: Uptime?
    public var failures: [CollectorFailure] = []
    public var timings: [CollectorTiming] = []

    public init(time: SampleTime) { self.time = time }

    /// Collectors that ran and delivered at least part of their data.
    public var succeeded: [CollectorName] {
        var names: [CollectorName] = []
        if bootID != nil { names.append(.boot) }
        if cpu != nil { names.append(.cpu) }
        if memory != nil { names.append(.memory) }
        if disks != nil { names.append(.disk) }
        if filesystems != nil { names.append(.filesystem) }
        if network != nil { names.append(.network) }
        if load != nil { names.append(.load) }
        if uptime != nil { names.append(.uptime) }
        return names
    }

    /// Names of the collectors that reported a failure, once each, in collector order.
    public var failedCollectors: [CollectorName] {
        Array(Set(failures.map(\.collector))).sorted()
    }
}
