/// A metering period: `[start, end)` in unix seconds.
public struct Period: Sendable, Equatable, Hashable, Codable {
    public var start: Int64
    public var end: Int64

    public init(start: Int64, end: Int64) {
        self.start = start
        self.end = end
    }

    public var seconds: Int64 { end - start }
}

/// What an instance used over one period. Units are decimal (1 MB = 10^6 bytes, 1 GB = 10^9 bytes).
public struct UsageMetrics: Sendable, Equatable, Codable {
    /// CPU time consumed on all CPUs, whole seconds; the sub-second remainder is carried into the
    /// next period, so the sum over events stays within 1 of the counter total.
    public var cpuSeconds: Int64
    /// Exact CPU time / (measured span × CPUs available to the instance) × 100.
    public var cpuPercentAvg: Double
    /// Time-weighted average memory in use over the period's samples.
    public var memoryGB: Double
    public var memoryPercent: Double
    /// Storage in use at the end of the period.
    public var storageGB: Double
    /// Bytes the instance sent.
    public var networkEgressMB: Double
    /// Bytes the instance received.
    public var networkIngressMB: Double
    /// Utilization-weighted GPU busy time, whole seconds with carry like `cpuSeconds`.
    public var gpuSeconds: Int64

    public init(
        cpuSeconds: Int64 = 0, cpuPercentAvg: Double = 0, memoryGB: Double = 0, memoryPercent: Double = 0,
        storageGB: Double = 0, networkEgressMB: Double = 0, networkIngressMB: Double = 0, gpuSeconds: Int64 = 0
    ) {
        self.cpuSeconds = cpuSeconds
        self.cpuPercentAvg = cpuPercentAvg
        self.memoryGB = memoryGB
        self.memoryPercent = memoryPercent
        self.storageGB = storageGB
        self.networkEgressMB = networkEgressMB
        self.networkIngressMB = networkIngressMB
        self.gpuSeconds = gpuSeconds
    }

    enum CodingKeys: String, CodingKey {
        case cpuSeconds = "cpu_seconds", cpuPercentAvg = "cpu_percent_avg", memoryGB = "memory_gb"
        case memoryPercent = "memory_percent", storageGB = "storage_gb", networkEgressMB = "network_egress_mb"
        case networkIngressMB = "network_ingress_mb", gpuSeconds = "gpu_seconds"
    }
}

/// The billable record of one instance over one period: UsageEvent v1.0.
///
/// `eventID` is a name-based UUID (v5) of the event type, host, instance and period (see
/// `UsageEvent.eventID(hostID:instanceID:period:)`): the same instance and period always give the
/// same id, so a consumer that dedupes by it counts a resent event once.
public struct UsageEvent: Sendable, Equatable, Codable {
    public static let eventType = "resource_usage"

    public var eventID: String
    public var eventType: String
    public var version: String
    /// When the event was made, unix seconds.
    public var timestamp: Int64
    public var hostID: String
    public var instanceID: String
    public var userID: String
    public var orgID: String?
    public var metrics: UsageMetrics
    public var period: Period
    /// UsageEvent 1.1: the event's place in its instance's chain, 1 for the first event the agent
    /// made for the instance, one more for each after it, across restarts.
    public var seq: Int64?
    /// UsageEvent 1.1: `hash` of the instance's previous event (seq − 1); nil for seq 1.
    public var prevHash: String?
    /// UsageEvent 1.1: the lower-case hex SHA-256 of the event's RFC 8785 canonical JSON without
    /// `hash` (`chainHash()`).
    public var hash: String?

    public init(
        hostID: String, instanceID: String, userID: String, orgID: String?, period: Period, metrics: UsageMetrics,
        timestamp: Int64, version: UsageSchemaVersion = .current
    ) {
        self.eventID = Self.eventID(hostID: hostID, instanceID: instanceID, period: period)
        self.eventType = Self.eventType
        self.version = version.rawValue
        self.timestamp = timestamp
        self.hostID = hostID
        self.instanceID = instanceID
        self.userID = userID
        self.orgID = orgID
        self.metrics = metrics
        self.period = period
    }

    /// UUID v5 in hostmeter's namespace of "resource_usage\n<host_id>\n<instance_id>\n<start>\n<end>".
    /// Newlines cannot occur in ids (configuration refuses them), so the name is unambiguous. The
    /// schema version is not part of it: the same usage is the same event in every version.
    public static func eventID(hostID: String, instanceID: String, period: Period) -> String {
        NameBasedUUID.v5(name: "\(eventType)\n\(hostID)\n\(instanceID)\n\(period.start)\n\(period.end)")
    }

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id", eventType = "event_type", version, timestamp, hostID = "host_id"
        case instanceID = "instance_id", userID = "user_id", orgID = "org_id", metrics, period
        case seq, prevHash = "prev_hash", hash
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        eventID = try container.decode(String.self, forKey: .eventID)
        eventType = try container.decode(String.self, forKey: .eventType)
        version = try container.decode(String.self, forKey: .version)
        timestamp = try container.decode(Int64.self, forKey: .timestamp)
        hostID = try container.decode(String.self, forKey: .hostID)
        instanceID = try container.decode(String.self, forKey: .instanceID)
        userID = try container.decode(String.self, forKey: .userID)
        orgID = try container.decodeIfPresent(String.self, forKey: .orgID)
        metrics = try container.decode(UsageMetrics.self, forKey: .metrics)
        period = try container.decode(Period.self, forKey: .period)
        seq = try container.decodeIfPresent(Int64.self, forKey: .seq)
        prevHash = try container.decodeIfPresent(String.self, forKey: .prevHash)
        hash = try container.decodeIfPresent(String.self, forKey: .hash)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(eventID, forKey: .eventID)
        try container.encode(eventType, forKey: .eventType)
        try container.encode(version, forKey: .version)
        try container.encode(timestamp, forKey: .timestamp)
        try container.encode(hostID, forKey: .hostID)
        try container.encode(instanceID, forKey: .instanceID)
        try container.encode(userID, forKey: .userID)
        // org_id is always present, null when unset, as the wire format shows it.
        try container.encode(orgID, forKey: .orgID)
        try container.encode(metrics, forKey: .metrics)
        try container.encode(period, forKey: .period)
        if let seq {
            try container.encode(seq, forKey: .seq)
            // prev_hash is always present in 1.1, null for an instance's first event.
            try container.encode(prevHash, forKey: .prevHash)
            try container.encodeIfPresent(hash, forKey: .hash)
        }
    }
}
