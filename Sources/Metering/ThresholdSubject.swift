public import UsageModel

/// One metered instance over one closed period, as threshold rules see it.
///
/// `values` holds the period's `UsageEvent` metrics and the gauges sampled at its close. A metric
/// absent from it (no GPU, no filesystem gauge for a VM) means rules on that metric do not apply to
/// this instance in this period: their state is kept unchanged, neither advanced nor reset. A
/// non-finite value (NaN, ±∞) counts as absent.
public struct ThresholdSubject: Sendable, Equatable {
    public var instanceID: String
    public var userID: String
    public var orgID: String?
    /// The host itself in host mode (`ThresholdScope.host`).
    public var isHost: Bool
    public var period: Period
    /// Kept in a flat table by metric: every rule looks one up, and a table read costs a
    /// fraction of a dictionary's hashing.
    var readings: ThresholdReadings

    public init(
        instanceID: String, userID: String, orgID: String? = nil, isHost: Bool, period: Period,
        values: [ThresholdMetric: Double]
    ) {
        self.instanceID = instanceID
        self.userID = userID
        self.orgID = orgID
        self.isHost = isHost
        self.period = period
        self.readings = ThresholdReadings(values)
    }

    /// The period's metric values and gauges.
    public var values: [ThresholdMetric: Double] {
        get { readings.dictionary }
        set { readings = ThresholdReadings(newValue) }
    }

    /// The value of `metric` a rule can be checked against: nil when absent or not finite.
    public func value(of metric: ThresholdMetric) -> Double? {
        guard let value = readings[metric], value.isFinite else { return nil }
        return value
    }

    /// The subject of a usage event: its identity, period and metrics, plus `gauges` (which win
    /// over a usage metric of the same name; there is none today).
    public init(event: UsageEvent, isHost: Bool, gauges: [ThresholdMetric: Double] = [:]) {
        var values = Self.values(of: event.metrics)
        values.merge(gauges) { _, gauge in gauge }
        self.init(
            instanceID: event.instanceID, userID: event.userID, orgID: event.orgID, isHost: isHost, period: event.period,
            values: values)
    }

    /// A period's usage metrics by the threshold metric of the same name.
    public static func values(of metrics: UsageMetrics) -> [ThresholdMetric: Double] {
        [
            .cpuSeconds: Double(metrics.cpuSeconds), .cpuPercentAvg: metrics.cpuPercentAvg, .memoryGB: metrics.memoryGB,
            .memoryPercent: metrics.memoryPercent, .storageGB: metrics.storageGB,
            .networkEgressMB: metrics.networkEgressMB, .networkIngressMB: metrics.networkIngressMB,
            .gpuSeconds: Double(metrics.gpuSeconds),
        ]
    }
}

/// Metric values in a table indexed by metric, with a bit per metric for presence.
struct ThresholdReadings: Sendable, Equatable {
    private var present: UInt32 = 0
    private var table: [Double]

    init(_ values: [ThresholdMetric: Double]) {
        table = Array(repeating: 0, count: ThresholdMetric.allCases.count)
        for (metric, value) in values {
            table[metric.slot] = value
            present |= 1 << UInt32(metric.slot)
        }
    }

    subscript(metric: ThresholdMetric) -> Double? {
        let slot = metric.slot
        return present & (1 << UInt32(slot)) == 0 ? nil : table[slot]
    }

    var dictionary: [ThresholdMetric: Double] {
        var values: [ThresholdMetric: Double] = [:]
        for metric in ThresholdMetric.allCases { if let value = self[metric] { values[metric] = value } }
        return values
    }
}

extension ThresholdMetric {
    /// The metric's place in `ThresholdReadings`; a new metric needs a case here (the switch is
    /// exhaustive, so the compiler says so) and must stay below 32.
    var slot: Int {
        switch self {
        case .cpuSeconds: 0
        case .cpuPercentAvg: 1
        case .memoryGB: 2
        case .memoryPercent: 3
        case .storageGB: 4
        case .networkEgressMB: 5
        case .networkIngressMB: 6
        case .gpuSeconds: 7
        case .filesystemUsedPercent: 8
        case .gpuUtilizationPercent: 9
        case .gpuMemoryPercent: 10
        case .gpuTemperatureCelsius: 11
        case .loadPerCPU: 12
        case .outboxPendingEvents: 13
        }
    }
}
