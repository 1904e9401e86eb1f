// The JSON shape of a GPU snapshot, as the local API's /get serves it. Keys are snake_case; every
// per-GPU key is present, null where the GPU or library does not give the figure.

extension GPUSnapshot: Encodable {
    private enum CodingKeys: String, CodingKey {
        case timestamp, gpus, error
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(time.wallSeconds, forKey: .timestamp)
        try container.encode(gpus, forKey: .gpus)
        try container.encode(error, forKey: .error)
    }
}

extension GPUReading: Encodable {
    private enum CodingKeys: String, CodingKey {
        case index, uuid, name
        case utilizationPercent = "utilization_percent", utilizationSource = "utilization_source"
        case busyNanoseconds = "busy_ns"
        case memoryUsedBytes = "memory_used_bytes", memoryTotalBytes = "memory_total_bytes"
        case powerWatts = "power_watts", energyJoules = "energy_joules"
        case temperatureCelsius = "temperature_celsius", migMode = "mig_mode", lost, error
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(index, forKey: .index)
        try container.encode(uuid, forKey: .uuid)
        try container.encode(name, forKey: .name)
        try container.encode(utilizationPercent, forKey: .utilizationPercent)
        try container.encode(utilizationSource, forKey: .utilizationSource)
        try container.encode(busyNanoseconds, forKey: .busyNanoseconds)
        try container.encode(memoryUsedBytes, forKey: .memoryUsedBytes)
        try container.encode(memoryTotalBytes, forKey: .memoryTotalBytes)
        try container.encode(powerWatts, forKey: .powerWatts)
        try container.encode(energyJoules, forKey: .energyJoules)
        try container.encode(temperatureCelsius, forKey: .temperatureCelsius)
        // "enabled" / "disabled"; "enabled (pending disabled)" while a change waits for a reset.
        try container.encode(migMode.map(\.description), forKey: .migMode)
        try container.encode(lost, forKey: .lost)
        try container.encode(error, forKey: .error)
    }
}

extension MIGMode: CustomStringConvertible {
    public var description: String {
        let current = enabled ? "enabled" : "disabled"
        return enabled == pendingEnabled ? current : "\(current) (pending \(pendingEnabled ? "enabled" : "disabled"))"
    }
}
