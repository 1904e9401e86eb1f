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
    /// The kernel object behind each counter source name, where it has an identity that changes
    /// when the object is recreated: the cgroup's inode for "cgroup", a tap's ifindex for its
    /// name. A counter whose generation changed started again from zero.
    public var generations: [String: UInt64]
    /// GPUs assigned to the instance that the host's NVML cannot see (passed through): billed as
    /// busy for every second the instance runs.
    public var assignedGPUs: Int

    public init(
        time: SampleTime, bootID: String, counters: [CounterSource: UInt64] = [:], cpuCapacity: Double = 1,
        memoryUsedBytes: UInt64? = nil, memoryTotalBytes: UInt64? = nil, storageUsedBytes: UInt64? = nil,
        generations: [String: UInt64] = [:], assignedGPUs: Int = 0
    ) {
        self.time = time
        self.bootID = bootID
        self.counters = counters
        self.cpuCapacity = cpuCapacity
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
        self.storageUsedBytes = storageUsedBytes
        self.generations = generations
        self.assignedGPUs = assignedGPUs
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

/// A GPU the host's NVML sees, for assigning GPUs to instances: its index, UUID and busy-time
/// counter (nil while NVML gives no figure for it, e.g. lost or MIG).
public struct VisibleGPU: Sendable, Equatable {
    public var index: Int
    public var uuid: String
    public var busyNanoseconds: UInt64?

    public init(index: Int, uuid: String, busyNanoseconds: UInt64?) {
        self.index = index
        self.uuid = uuid
        self.busyNanoseconds = busyNanoseconds
    }
}

extension InstanceReading {
    /// Counter source name of an instance's cgroup CPU time; its generation is the cgroup's inode.
    public static let cgroupSource = "cgroup"

    /// One instance (VM) from what its probe read:
    /// - CPU time from its cgroup, the generation being the cgroup directory's inode, so a VM
    ///   restarted between two samples is a reset (counted from zero), never a negative delta;
    /// - its taps with the direction flipped: what the host receives on a tap the guest sent
    ///   (egress), what the host transmits the guest received (ingress); each tap's ifindex is its
    ///   generation;
    /// - memory in use against the cgroup's limit, or the host's memory without one;
    /// - storage as the allocated size of its disks;
    /// - its GPUs' busy time when the host's NVML sees them, else (passed through) the count of
    ///   GPUs billed as busy while it runs;
    /// - `vcpus` as the CPU capacity behind cpu_percent_avg.
    public static func instance(
        _ probe: InstanceProbeResult, manifest: InstanceManifest, time: SampleTime, bootID: String,
        hostMemoryTotalBytes: UInt64?, gpus: [VisibleGPU] = []
    ) -> InstanceReading {
        var reading = InstanceReading(time: time, bootID: bootID, cpuCapacity: Double(manifest.vcpus))
        if let cgroup = probe.cgroup {
            if let cpu = cgroup.cpuNanoseconds {
                reading.counters[CounterSource(.cpuNanoseconds, cgroupSource)] = cpu
                reading.generations[cgroupSource] = cgroup.generation
            }
            reading.memoryUsedBytes = cgroup.memoryBytes
            reading.memoryTotalBytes = cgroup.memoryLimitBytes ?? hostMemoryTotalBytes
        }
        for interface in probe.interfaces {
            reading.counters[CounterSource(.egressBytes, interface.name)] = interface.rxBytes
            reading.counters[CounterSource(.ingressBytes, interface.name)] = interface.txBytes
            reading.generations[interface.name] = interface.ifindex
        }
        if !manifest.disks.isEmpty {
            reading.storageUsedBytes = probe.disks.reduce(0) { $0 &+ $1.allocatedBytes }
        }
        for assigned in manifest.gpus {
            if let gpu = gpus.first(where: { $0.uuid == assigned || String($0.index) == assigned }) {
                if let busy = gpu.busyNanoseconds {
                    reading.counters[CounterSource(.gpuBusyNanoseconds, gpu.uuid)] = busy
                }
            } else {
                reading.assignedGPUs += 1
            }
        }
        return reading
    }
}
