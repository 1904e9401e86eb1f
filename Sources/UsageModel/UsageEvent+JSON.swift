extension UsageEvent {
    /// The event's wire bytes: what `JSONEncoder` with `.sortedKeys` and `.withoutEscapingSlashes`
    /// writes, made without it (see `JSONBytes`). `org_id` is always present, null when unset; a
    /// chained event (1.1) adds `hash`, `prev_hash` (null for seq 1) and `seq`.
    public func wireJSON() throws(JSONBytes.NonConformingFloat) -> [UInt8] {
        var json = JSONBytes(capacity: 512, escapingSlashes: false)
        json.beginObject()
        json.key("event_id")
        json.string(eventID)
        json.key("event_type")
        json.string(eventType)
        if seq != nil, let hash { json.member("hash", hash) }
        json.key("host_id")
        json.string(hostID)
        json.key("instance_id")
        json.string(instanceID)
        json.key("metrics")
        json.beginObject()
        try json.member("cpu_percent_avg", metrics.cpuPercentAvg)
        json.member("cpu_seconds", metrics.cpuSeconds)
        json.member("gpu_seconds", metrics.gpuSeconds)
        try json.member("memory_gb", metrics.memoryGB)
        try json.member("memory_percent", metrics.memoryPercent)
        try json.member("network_egress_mb", metrics.networkEgressMB)
        try json.member("network_ingress_mb", metrics.networkIngressMB)
        try json.member("storage_gb", metrics.storageGB)
        json.endObject()
        json.key("org_id")
        if let orgID { json.string(orgID) } else { json.null() }
        json.key("period")
        json.beginObject()
        json.member("end", period.end)
        json.member("start", period.start)
        json.endObject()
        if let seq {
            json.key("prev_hash")
            if let prevHash { json.string(prevHash) } else { json.null() }
            json.member("seq", seq)
        }
        json.member("timestamp", timestamp)
        json.member("user_id", userID)
        json.member("version", version)
        json.endObject()
        return json.bytes
    }
}
