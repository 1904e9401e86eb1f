public import UsageModel

extension MeterState {
    /// The checkpoint as stored: the bytes `JSONEncoder` with `.sortedKeys` writes, made without it
    /// (see `JSONBytes`), since one is written per instance per sample. `JSONDecoder` reads it back.
    public func checkpointJSON() throws(JSONBytes.NonConformingFloat) -> [UInt8] {
        var json = JSONBytes(capacity: 256 + counters.count * 96)
        json.beginObject()
        json.key("boot_id")
        json.string(bootID)
        json.key("counters")
        json.beginObject()
        for source in JSONBytes.sortedKeys(counters.keys) {
            json.key(source)
            counters[source]!.write(into: &json)
        }
        json.endObject()
        json.key("cpu_carry_ns")
        json.integer(cpuCarryNanos)
        json.key("format")
        json.integer(format)
        json.key("gpu_carry_ns")
        json.integer(gpuCarryNanos)
        if let identity {
            json.key("identity")
            json.beginObject()
            json.member("instance_id", identity.instanceID)
            json.member("org_id", identity.orgID)
            json.member("user_id", identity.userID)
            json.endObject()
        }
        json.member("last_boot_ns", lastBootNanos)
        try json.member("last_memory_percent", lastMemoryPercent)
        json.member("last_memory_used_bytes", lastMemoryUsedBytes)
        json.member("last_wall_ns", lastWallNanos)
        json.key("period")
        try period.write(into: &json)
        json.member("stopped_at", stoppedAt)
        json.endObject()
        return json.bytes
    }
}

extension CounterBaseline {
    func write(into json: inout JSONBytes) {
        json.beginObject()
        json.member("generation", generation)
        json.member("last_seen_boot_ns", lastSeenBootNanos)
        json.member("value", value)
        json.endObject()
    }
}

extension OpenPeriod {
    func write(into json: inout JSONBytes) throws(JSONBytes.NonConformingFloat) {
        json.beginObject()
        try json.member("cpu_capacity", cpuCapacity)
        try json.member("gauge_seconds", gaugeSeconds)
        try json.member("memory_byte_seconds", memoryByteSeconds)
        try json.member("memory_percent_seconds", memoryPercentSeconds)
        json.member("span_start_boot_ns", spanStartBootNanos)
        json.member("start", start)
        json.member("storage_used_bytes", storageUsedBytes)
        json.key("usage")
        json.beginObject()
        for kind in JSONBytes.sortedKeys(usage.keys.map(\.rawValue)) {
            json.key(kind)
            json.integer(usage[CounterKind(rawValue: kind)!]!)
        }
        json.endObject()
        json.endObject()
    }
}
