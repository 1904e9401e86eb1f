public import Probes

/// The cumulative counters metering knows, by the metric they feed.
public enum CounterKind: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
    /// CPU time consumed, nanoseconds.
    case cpuNanoseconds = "cpu_ns"
    /// Bytes the instance sent.
    case egressBytes = "egress_bytes"
    /// Bytes the instance received.
    case ingressBytes = "ingress_bytes"
    /// Utilization-weighted GPU busy time, nanoseconds.
    case gpuBusyNanoseconds = "gpu_busy_ns"
}

/// One cumulative counter of an instance: its kind and where it comes from ("eth0", "cpu", a GPU
/// UUID). Each is tracked on its own, so one interface being recreated resets only its counter.
public struct CounterSource: Sendable, Hashable, Codable, CustomStringConvertible {
    public var kind: CounterKind
    public var name: String

    public init(_ kind: CounterKind, _ name: String) {
        self.kind = kind
        self.name = name
    }

    public var description: String { "\(kind.rawValue):\(name)" }
}

/// What metering needs of one instance at one moment: cumulative counters and gauges.
public struct InstanceReading: Sendable, Equatable {
    public var time: SampleTime
    /// The host's boot ID: a different one means every counter started again.
    public var bootID: String
    public var counters: [CounterSource: UInt64]
    /// CPUs available to the instance, for cpu_percent_avg.
    public var cpuCapacity: Double
    public var memoryUsedBytes: UInt64?
    public var memoryTotalBytes: UInt64?
    public var storageUsedBytes: UInt64?

    public init(
        time: SampleTime, bootID: String, counters: [CounterSource: UInt64] = [:], cpuCapacity: Double = 1,
        memoryUsedBytes: UInt64? = nil, memoryTotalBytes: UInt64? = nil, storageUsedBytes: UInt64? = nil
    ) {
        self.time = time
        self.bootID = bootID
        self.counters = counters
        self.cpuCapacity = cpuCapacity
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
        self.storageUsedBytes = storageUsedBytes
    }
}

extension InstanceReading {
    /// The whole host as one instance: CPU busy time of all CPUs, memory in use, space used on the
    /// metered filesystems, and bytes on the metered interfaces (tx is egress, rx ingress).
    /// nil without a boot ID, since deltas cannot be trusted without knowing the boot.
    public static func host(_ sample: HostSample) -> InstanceReading? {
        guard let bootID = sample.bootID else { return nil }
        var reading = InstanceReading(time: sample.time, bootID: bootID)
        if let cpu = sample.cpu {
            reading.counters[CounterSource(.cpuNanoseconds, "cpu")] = nanoseconds(ticks: cpu.total.busy, userHZ: cpu.userHZ)
            reading.cpuCapacity = Double(cpu.cpuCount)
        }
        if let memory = sample.memory {
            reading.memoryUsedBytes = memory.usedBytes
            reading.memoryTotalBytes = memory.totalBytes
        }
        if let filesystems = sample.filesystems {
            reading.storageUsedBytes = filesystems.reduce(0) { $0 &+ $1.space.usedBytes }
        }
        for interface in sample.network ?? [] {
            reading.counters[CounterSource(.egressBytes, interface.name)] = interface.txBytes
            reading.counters[CounterSource(.ingressBytes, interface.name)] = interface.rxBytes
        }
        return reading
    }

    /// ticks × 10^9 / USER_HZ without overflow, truncated to 64 bits the way the tick counter
    /// itself wraps (deltas of it stay right).
    static func nanoseconds(ticks: UInt64, userHZ: Int) -> UInt64 {
        let product = ticks.multipliedFullWidth(by: 1_000_000_000)
        let hz = UInt64(userHZ)
        // Divide the high part first so the full-width division cannot overflow.
        let high = product.high % hz
        return hz.dividingFullWidth((high: high, low: product.low)).quotient
    }
}
