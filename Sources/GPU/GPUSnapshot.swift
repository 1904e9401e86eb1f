public import Probes

/// What one look at the host's NVIDIA GPUs found.
public struct GPUSnapshot: Sendable, Equatable {
    /// When the look started.
    public var time: SampleTime
    /// One reading per GPU index NVML reported, in index order.
    public var gpus: [GPUReading]
    /// Why no GPU could be listed (nvmlDeviceGetCount failed); nil when listing worked.
    public var error: String?

    public init(time: SampleTime, gpus: [GPUReading], error: String? = nil) {
        self.time = time
        self.gpus = gpus
        self.error = error
    }

    /// The busy-time counter of every GPU whose utilization was read in this look, keyed by GPU
    /// UUID: the source name of `CounterKind.gpuBusyNanoseconds` for metering. A GPU that is lost,
    /// failed, or has no utilization figure (MIG enabled) is left out, so metering keeps its last
    /// value and counts nothing for it until it reads again.
    public func counters() -> [(uuid: String, busyNanoseconds: UInt64)] {
        gpus.compactMap { gpu in
            guard !gpu.lost, let uuid = gpu.uuid, let busy = gpu.busyNanoseconds else { return nil }
            return (uuid, busy)
        }
    }
}

/// One GPU in a snapshot. Figures the GPU or library does not support are nil.
public struct GPUReading: Sendable, Equatable {
    /// NVML's index (enumeration order; not stable across reboots or driver reloads: use `uuid`).
    public var index: Int
    /// "GPU-…": stable for the life of the board.
    public var uuid: String?
    public var name: String?
    /// Percent of the interval since the previous look that a kernel ran: from NVML's sample
    /// buffer integrated over the interval, or NVML's last-period rate where samples are not
    /// supported (see `utilizationSource`).
    public var utilizationPercent: Double?
    public var utilizationSource: UtilizationSource?
    /// Utilization-weighted busy time since this process first read the GPU, nanoseconds.
    /// Never decreases while the process lives; starts again at zero in a new process.
    public var busyNanoseconds: UInt64?
    public var memoryUsedBytes: UInt64?
    public var memoryTotalBytes: UInt64?
    public var powerWatts: Double?
    /// Energy since the driver was last loaded, joules.
    public var energyJoules: Double?
    public var temperatureCelsius: Int?
    public var migMode: MIGMode?
    /// NVML said the GPU fell off the bus (NVML_ERROR_GPU_IS_LOST); nothing else was read.
    public var lost: Bool
    /// What failed, with nvmlErrorString's text ("nvmlDeviceGetPowerUsage: Insufficient Permissions"),
    /// several joined with "; "; nil when everything supported was read.
    public var error: String?

    public init(
        index: Int, uuid: String? = nil, name: String? = nil, utilizationPercent: Double? = nil,
        utilizationSource: UtilizationSource? = nil, busyNanoseconds: UInt64? = nil, memoryUsedBytes: UInt64? = nil,
        memoryTotalBytes: UInt64? = nil, powerWatts: Double? = nil, energyJoules: Double? = nil,
        temperatureCelsius: Int? = nil, migMode: MIGMode? = nil, lost: Bool = false, error: String? = nil
    ) {
        self.index = index
        self.uuid = uuid
        self.name = name
        self.utilizationPercent = utilizationPercent
        self.utilizationSource = utilizationSource
        self.busyNanoseconds = busyNanoseconds
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
        self.powerWatts = powerWatts
        self.energyJoules = energyJoules
        self.temperatureCelsius = temperatureCelsius
        self.migMode = migMode
        self.lost = lost
        self.error = error
    }
}

/// Where a utilization figure came from.
public enum UtilizationSource: String, Sendable, Equatable, Codable {
    /// nvmlDeviceGetSamples: every sample since the previous look, integrated.
    case samples
    /// nvmlDeviceGetUtilizationRates: one reading of the last sample period, held for the whole
    /// interval. Used only where the sample buffer is not supported.
    case rates
}

/// A GPU's Multi-Instance GPU mode: the current one and the one that applies after the next reset.
public struct MIGMode: Sendable, Equatable {
    public var enabled: Bool
    public var pendingEnabled: Bool

    public init(enabled: Bool, pendingEnabled: Bool) {
        self.enabled = enabled
        self.pendingEnabled = pendingEnabled
    }
}
