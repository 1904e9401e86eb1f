extension UsageEvent {
    /// One event for a run of contiguous events of the same instance, as the outbox makes when it
    /// nears its size bound: additive metrics summed, averages weighted by period length, storage
    /// from the last period, the id derived from the merged period like any other.
    ///
    /// nil unless the events are non-empty, of one host, instance, owner and version, and tile time
    /// in order. Only events never offered to a consumer may be merged: one that may have been
    /// delivered would be billed again inside the merged event.
    /// Whether two events are of the same host, instance, owner, type and version.
    public static func canMerge(_ a: UsageEvent, _ b: UsageEvent) -> Bool {
        // A chained (1.1) event is never merged: a merge would rewrite its instance's chain.
        a.seq == nil && b.seq == nil && a.hostID == b.hostID && a.instanceID == b.instanceID && a.userID == b.userID && a.orgID == b.orgID
            && a.version == b.version && a.eventType == b.eventType
    }

    public static func merging(_ events: [UsageEvent]) -> UsageEvent? {
        guard let first = events.first, let last = events.last else { return nil }
        for (earlier, later) in zip(events, events.dropFirst()) {
            guard later.period.start == earlier.period.end, canMerge(first, later) else { return nil }
        }
        guard events.count > 1 else { return first }
        let period = Period(start: first.period.start, end: last.period.end)
        let seconds = Double(period.seconds)
        func weighted(_ value: (UsageMetrics) -> Double) -> Double {
            events.reduce(0) { $0 + value($1.metrics) * Double($1.period.seconds) } / seconds
        }
        func rounded(_ value: Double, _ scale: Double) -> Double { (value * scale).rounded() / scale }
        let metrics = UsageMetrics(
            cpuSeconds: events.reduce(0) { $0 + $1.metrics.cpuSeconds },
            cpuPercentAvg: rounded(weighted(\.cpuPercentAvg), 1e3),
            memoryGB: rounded(weighted(\.memoryGB), 1e6),
            memoryPercent: rounded(weighted(\.memoryPercent), 1e3),
            storageGB: last.metrics.storageGB,
            networkEgressMB: rounded(events.reduce(0) { $0 + $1.metrics.networkEgressMB }, 1e6),
            networkIngressMB: rounded(events.reduce(0) { $0 + $1.metrics.networkIngressMB }, 1e6),
            gpuSeconds: events.reduce(0) { $0 + $1.metrics.gpuSeconds })
        var merged = UsageEvent(
            hostID: first.hostID, instanceID: first.instanceID, userID: first.userID, orgID: first.orgID,
            period: period, metrics: metrics, timestamp: events.map(\.timestamp).max() ?? last.timestamp)
        merged.version = first.version
        return merged
    }
}
