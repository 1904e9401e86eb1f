public import Outbox
public import Shipping

/// What the API reads of the running agent: the snapshot the sampler publishes, the shipper's and
/// the Alertmanager notifier's status and the metrics registry. The API asks it for views (health, the metrics exposition,
/// the outbox report) and never needs the sampler's or the shipper's types itself.
public struct AgentStatus: Sendable {
    public let state: AgentState
    public let shipper: ShipperStatus
    /// The notifier, when `alerting.alertmanager_url` is set.
    public let alertmanager: AlertmanagerNotifier?
    public let metrics: AgentMetrics

    public init(
        state: AgentState, shipper: ShipperStatus, alertmanager: AlertmanagerNotifier? = nil, metrics: AgentMetrics
    ) {
        self.state = state
        self.shipper = shipper
        self.alertmanager = alertmanager
        self.metrics = metrics
    }

    public func health(now: Double) -> AgentHealth {
        AgentHealth(snapshot: state.snapshot, shipper: shipper.snapshot, alertmanager: alertmanager?.snapshot, now: now)
    }

    /// The Prometheus text exposition: the registry's gauges set from the current state.
    public func exposition(now: Double) -> [UInt8] {
        let alertmanager = alertmanager?.snapshot
        return metrics.exposition(
            snapshot: state.snapshot, shipper: shipper.snapshot,
            health: AgentHealth(snapshot: state.snapshot, shipper: shipper.snapshot, alertmanager: alertmanager, now: now),
            alertmanager: alertmanager)
    }

    /// The outbox's figures and the shipper's state (`GET /outbox`); nil before the first sample read them.
    public func outboxReport() -> OutboxReport? {
        let snapshot = state.snapshot
        guard let stats = snapshot.outbox else { return nil }
        return OutboxReport(
            stats: stats, maxBytes: snapshot.outboxMaxBytes, full: snapshot.outboxFull, shipper: shipper.snapshot)
    }
}

/// The body of `GET /outbox`: the outbox's figures beside the shipper's state.
public struct OutboxReport: Sendable, Encodable {
    public var stats: OutboxStats
    public var maxBytes: Int
    public var full: Bool
    public var shipper: ShipperSnapshot

    enum CodingKeys: String, CodingKey {
        case maxBytes = "max_bytes", full, circuitBreaker = "circuit_breaker"
        case consecutiveFailures = "consecutive_failures", requests, eventsDelivered = "events_delivered"
        case eventsDeadLettered = "events_dead_lettered", lastError = "last_error"
        case lastDeliveryAt = "last_delivery_at"
    }

    public func encode(to encoder: any Encoder) throws {
        try stats.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(maxBytes, forKey: .maxBytes)
        try container.encode(full, forKey: .full)
        try container.encode(shipper.breakerState.name, forKey: .circuitBreaker)
        try container.encode(shipper.consecutiveFailures, forKey: .consecutiveFailures)
        try container.encode(shipper.requests, forKey: .requests)
        try container.encode(shipper.eventsDelivered, forKey: .eventsDelivered)
        try container.encode(shipper.eventsDeadLettered, forKey: .eventsDeadLettered)
        try container.encode(shipper.lastError, forKey: .lastError)
        try container.encode(shipper.lastDeliveryAt, forKey: .lastDeliveryAt)
    }
}
