
/// A counter's last value and when it was last seen.
public struct CounterBaseline: Sendable, Equatable, Codable {
    public var value: UInt64
    public var lastSeenBootNanos: UInt64
    /// Identity of the kernel object the counter belongs to (a cgroup's inode, an interface's
    /// ifindex) when the reading gave one: a different one means the object was recreated.
    public var generation: UInt64? = nil

    enum CodingKeys: String, CodingKey {
        case value, lastSeenBootNanos = "last_seen_boot_ns", generation
    }
}

/// The period being accumulated: what has been used since `start`, not yet billed.
public struct OpenPeriod: Sendable, Equatable, Codable {
    /// Unix seconds where the period starts (where the previous one ended).
    public var start: Int64
    /// Boot-clock time of the sample the period's deltas are measured from.
    public var spanStartBootNanos: UInt64
    /// Exact usage so far, by counter kind (nanoseconds or bytes).
    public var usage: [CounterKind: UInt64]
    /// ∫ memory used dt, in byte·seconds, and ∫ memory percent dt, over `gaugeSeconds`.
    public var memoryByteSeconds: Double
    public var memoryPercentSeconds: Double
    public var gaugeSeconds: Double
    /// Storage in use at the latest sample that had it.
    public var storageUsedBytes: UInt64?
    /// CPUs available at the latest sample.
    public var cpuCapacity: Double

    init(start: Int64, spanStartBootNanos: UInt64, cpuCapacity: Double, storageUsedBytes: UInt64?) {
        self.start = start
        self.spanStartBootNanos = spanStartBootNanos
        self.usage = [:]
        self.memoryByteSeconds = 0
        self.memoryPercentSeconds = 0
        self.gaugeSeconds = 0
        self.storageUsedBytes = storageUsedBytes
        self.cpuCapacity = cpuCapacity
    }

    enum CodingKeys: String, CodingKey {
        case start, spanStartBootNanos = "span_start_boot_ns", usage, memoryByteSeconds = "memory_byte_seconds"
        case memoryPercentSeconds = "memory_percent_seconds", gaugeSeconds = "gauge_seconds"
        case storageUsedBytes = "storage_used_bytes", cpuCapacity = "cpu_capacity"
    }
}

/// Everything metering must remember about one instance between samples: the checkpoint.
///
/// It is persisted with the events its period produced, in one transaction, so after a crash the
/// agent resumes from exactly the counters and carries that the stored events were computed from.
public struct MeterState: Sendable, Equatable, Codable {
    /// Bumped when the layout changes incompatibly; a stored checkpoint of another format is refused.
    public static let format = 1

    public var format: Int
    public var bootID: String
    /// When the latest sample was taken.
    public var lastWallNanos: Int64
    public var lastBootNanos: UInt64
    /// Counter values at the latest sample, by `CounterSource.description`.
    public var counters: [String: CounterBaseline]
    /// Gauges at the latest sample, for time-weighting the next interval.
    public var lastMemoryUsedBytes: UInt64?
    public var lastMemoryPercent: Double?
    public var period: OpenPeriod
    /// Sub-unit remainders owed to the next period: nanoseconds of CPU and of GPU busy time.
    public var cpuCarryNanos: UInt64
    public var gpuCarryNanos: UInt64
    /// Set while the instance is not running: where its last period ended (unix seconds). Its
    /// counters are kept, so a cgroup that survived is billed from where it was.
    public var stoppedAt: Int64? = nil
    /// Who the instance was billed to at its latest step: a removed instance's final period goes
    /// to them even after a restart that no longer has its manifest.
    public var identity: InstanceIdentity? = nil

    enum CodingKeys: String, CodingKey {
        case format, bootID = "boot_id", lastWallNanos = "last_wall_ns", lastBootNanos = "last_boot_ns", counters
        case lastMemoryUsedBytes = "last_memory_used_bytes", lastMemoryPercent = "last_memory_percent", period
        case cpuCarryNanos = "cpu_carry_ns", gpuCarryNanos = "gpu_carry_ns", stoppedAt = "stopped_at", identity
    }

    /// Whether the open period has anything to bill: time covered by samples, or usage (a
    /// recreated cgroup counted from zero at the sample that started the period).
    public var hasOpenPeriod: Bool {
        lastBootNanos > period.spanStartBootNanos || period.usage.values.contains { $0 > 0 }
    }

    /// Whether the instance was running at the latest sample.
    public var isRunning: Bool { stoppedAt == nil }

    /// The exact usage of `kind` accumulated in the open period.
    public func openUsage(_ kind: CounterKind) -> UInt64 { period.usage[kind] ?? 0 }
}
