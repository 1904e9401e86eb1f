// The JSON shape of a host sample, as `hostmeter sample` prints it and the local API serves it.
// Keys are snake_case; times in seconds, sizes in bytes, CPU time in seconds (ticks / USER_HZ).

private struct DynamicKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// CPU ticks rendered as seconds per mode.
private struct CPUSeconds: Encodable {
    let ticks: CPUTicks
    let userHZ: Int
    let id: Int?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: DynamicKey.self)
        if let id { try container.encode(id, forKey: DynamicKey("cpu")) }
        for (name, value) in zip(CPUTicks.modeNames, ticks.modes) {
            try container.encodeIfPresent(value.map { Double($0) / Double(userHZ) }, forKey: DynamicKey(name))
        }
        try container.encode(Double(ticks.busy) / Double(userHZ), forKey: DynamicKey("busy"))
    }
}

extension Stat: Encodable {
    private enum CodingKeys: String, CodingKey {
        case count, userHZ = "user_hz", bootTime = "boot_time", total, perCPU = "per_cpu"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(cpuCount, forKey: .count)
        try container.encode(userHZ, forKey: .userHZ)
        try container.encodeIfPresent(bootTime, forKey: .bootTime)
        try container.encode(CPUSeconds(ticks: total, userHZ: userHZ, id: nil), forKey: .total)
        try container.encode(perCPU.map { CPUSeconds(ticks: $0.ticks, userHZ: userHZ, id: $0.id) }, forKey: .perCPU)
    }
}

extension Meminfo: Encodable {
    private enum CodingKeys: String, CodingKey {
        case totalBytes = "total_bytes", availableBytes = "available_bytes", usedBytes = "used_bytes"
        case usedPercent = "used_percent", availableEstimated = "available_estimated"
        case swapTotalBytes = "swap_total_bytes", swapFreeBytes = "swap_free_bytes", fields
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(totalBytes, forKey: .totalBytes)
        try container.encode(availableBytes, forKey: .availableBytes)
        try container.encode(usedBytes, forKey: .usedBytes)
        try container.encode(usedPercent, forKey: .usedPercent)
        try container.encode(availableIsEstimated, forKey: .availableEstimated)
        try container.encodeIfPresent(swapTotalBytes, forKey: .swapTotalBytes)
        try container.encodeIfPresent(swapFreeBytes, forKey: .swapFreeBytes)
        try container.encode(fields, forKey: .fields)
    }
}

extension DiskStats: Encodable {
    private enum CodingKeys: String, CodingKey {
        case name, major, minor
        case readsCompleted = "reads_completed", readsMerged = "reads_merged", sectorsRead = "sectors_read"
        case bytesRead = "read_bytes", readTimeMilliseconds = "read_time_ms"
        case writesCompleted = "writes_completed", writesMerged = "writes_merged"
        case sectorsWritten = "sectors_written", bytesWritten = "written_bytes"
        case writeTimeMilliseconds = "write_time_ms", ioInProgress = "io_in_progress"
        case ioTimeMilliseconds = "io_time_ms", weightedIOTimeMilliseconds = "weighted_io_time_ms"
        case discardsCompleted = "discards_completed", discardsMerged = "discards_merged"
        case sectorsDiscarded = "sectors_discarded", discardTimeMilliseconds = "discard_time_ms"
        case flushesCompleted = "flushes_completed", flushTimeMilliseconds = "flush_time_ms"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(major, forKey: .major)
        try container.encode(minor, forKey: .minor)
        try container.encode(readsCompleted, forKey: .readsCompleted)
        try container.encode(readsMerged, forKey: .readsMerged)
        try container.encode(sectorsRead, forKey: .sectorsRead)
        try container.encode(bytesRead, forKey: .bytesRead)
        try container.encode(readTimeMilliseconds, forKey: .readTimeMilliseconds)
        try container.encode(writesCompleted, forKey: .writesCompleted)
        try container.encode(writesMerged, forKey: .writesMerged)
        try container.encode(sectorsWritten, forKey: .sectorsWritten)
        try container.encode(bytesWritten, forKey: .bytesWritten)
        try container.encode(writeTimeMilliseconds, forKey: .writeTimeMilliseconds)
        try container.encode(ioInProgress, forKey: .ioInProgress)
        try container.encode(ioTimeMilliseconds, forKey: .ioTimeMilliseconds)
        try container.encode(weightedIOTimeMilliseconds, forKey: .weightedIOTimeMilliseconds)
        try container.encodeIfPresent(discardsCompleted, forKey: .discardsCompleted)
        try container.encodeIfPresent(discardsMerged, forKey: .discardsMerged)
        try container.encodeIfPresent(sectorsDiscarded, forKey: .sectorsDiscarded)
        try container.encodeIfPresent(discardTimeMilliseconds, forKey: .discardTimeMilliseconds)
        try container.encodeIfPresent(flushesCompleted, forKey: .flushesCompleted)
        try container.encodeIfPresent(flushTimeMilliseconds, forKey: .flushTimeMilliseconds)
    }
}

extension FilesystemUsage: Encodable {
    private enum CodingKeys: String, CodingKey {
        case mountPoint = "mount_point", source, fsType = "fs_type", device
        case sizeBytes = "size_bytes", usedBytes = "used_bytes", availableBytes = "available_bytes"
        case usedPercent = "used_percent", files, filesFree = "files_free"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(mountPoint, forKey: .mountPoint)
        try container.encode(source, forKey: .source)
        try container.encode(fsType, forKey: .fsType)
        try container.encode("\(major):\(minor)", forKey: .device)
        try container.encode(space.sizeBytes, forKey: .sizeBytes)
        try container.encode(space.usedBytes, forKey: .usedBytes)
        try container.encode(space.availableBytes, forKey: .availableBytes)
        try container.encode(space.usedPercent, forKey: .usedPercent)
        try container.encode(space.files, forKey: .files)
        try container.encode(space.filesFree, forKey: .filesFree)
    }
}

extension CollectorFailure: Encodable {
    private enum CodingKeys: String, CodingKey { case collector, path, message }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(collector, forKey: .collector)
        try container.encode(error.path, forKey: .path)
        try container.encode(error.description, forKey: .message)
    }
}

extension HostSample: Encodable {
    private enum CodingKeys: String, CodingKey {
        case timestamp, bootTimeNanoseconds = "boottime_ns", bootID = "boot_id", cpu, memory, disks
        case filesystems, network, load, uptime, failures, collectorDurations = "collector_duration_us"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(time.wallSeconds, forKey: .timestamp)
        try container.encode(time.bootNanos, forKey: .bootTimeNanoseconds)
        try container.encodeIfPresent(bootID, forKey: .bootID)
        try container.encodeIfPresent(cpu, forKey: .cpu)
        try container.encodeIfPresent(memory, forKey: .memory)
        try container.encodeIfPresent(disks, forKey: .disks)
        try container.encodeIfPresent(filesystems, forKey: .filesystems)
        try container.encodeIfPresent(network, forKey: .network)
        try container.encodeIfPresent(load, forKey: .load)
        try container.encodeIfPresent(uptime, forKey: .uptime)
        try container.encode(failures, forKey: .failures)
        var durations = container.nestedContainer(keyedBy: DynamicKey.self, forKey: .collectorDurations)
        for timing in timings {
            try durations.encode(Double(timing.nanoseconds) / 1000, forKey: DynamicKey(timing.collector.rawValue))
        }
    }
}

extension CPUModePercents: Encodable {
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: DynamicKey.self)
        for (name, value) in zip(CPUTicks.modeNames, modes) {
            try container.encodeIfPresent(value, forKey: DynamicKey(name))
        }
        try container.encode(busy, forKey: DynamicKey("busy"))
    }
}

extension PerCPURate: Encodable {
    public func encode(to encoder: any Encoder) throws {
        try percents.encode(to: encoder)
        var container = encoder.container(keyedBy: DynamicKey.self)
        try container.encode(id, forKey: DynamicKey("cpu"))
    }
}

extension HostRates: Encodable {
    private enum CodingKeys: String, CodingKey {
        case elapsedSeconds = "elapsed_seconds", cpuPercent = "cpu_percent", perCPUPercent = "per_cpu_percent"
        case disks, network
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(elapsedSeconds, forKey: .elapsedSeconds)
        try container.encodeIfPresent(cpu, forKey: .cpuPercent)
        try container.encode(perCPU, forKey: .perCPUPercent)
        try container.encode(disks, forKey: .disks)
        try container.encode(interfaces, forKey: .network)
    }
}

/// A sample with, when two were taken, the rates between them: what `hostmeter sample` prints and
/// `/get` shows as `host`.
public struct HostSampleReport: Encodable, Sendable {
    public let sample: HostSample
    public let rates: HostRates?

    public init(sample: HostSample, rates: HostRates?) {
        self.sample = sample
        self.rates = rates
    }

    public func encode(to encoder: any Encoder) throws {
        try sample.encode(to: encoder)
        if let rates {
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(rates, forKey: .rates)
        }
    }

    private enum Key: String, CodingKey { case rates }
}
