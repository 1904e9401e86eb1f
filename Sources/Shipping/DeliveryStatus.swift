import Synchronization

/// What a delivery loop is doing, for /health and /metrics: the shipper's (`ShipperSnapshot`) and
/// the Alertmanager notifier's (`AlertmanagerSnapshot.delivery`).
public struct DeliverySnapshot: Sendable, Equatable {
    public var breakerState: CircuitBreaker.State = .closed
    public var consecutiveFailures = 0
    public var lastError: String?
    /// The endpoint refuses the requests themselves (401, 403, 404, 407, another 4xx that is no
    /// verdict on the items): the answer, e.g. "HTTP 401: …". Cleared when the endpoint next takes
    /// or judges a batch. It will not pass by itself, so `/health` shows it.
    public var endpointRefusal: String?
    public var lastDeliveryAt: Double?
    public var requests = 0
    /// Items the endpoint acknowledged.
    public var delivered = 0
    /// Items the endpoint refused for good (dead-lettered events, alerts not sent again).
    public var refused = 0
    public var failures: [ShipFailureReason: Int] = [:]

    public init() {}
}

/// The shipper's names for its counts.
extension DeliverySnapshot {
    public var eventsDelivered: Int {
        get { delivered }
        set { delivered = newValue }
    }

    public var eventsDeadLettered: Int {
        get { refused }
        set { refused = newValue }
    }
}

/// What the shipper is doing, for /health and /metrics.
public typealias ShipperSnapshot = DeliverySnapshot

/// Shared view of a delivery loop's state: the loop writes it, the API reads it.
public final class DeliveryStatus: Sendable {
    private let state = Mutex(DeliverySnapshot())
    public init() {}
    public var snapshot: DeliverySnapshot { state.withLock { $0 } }
    public func update(_ body: (inout DeliverySnapshot) -> Void) { state.withLock { body(&$0) } }
}

/// Shared view of the shipper's state.
public typealias ShipperStatus = DeliveryStatus

/// One request to an endpoint, for the agent's metrics.
public struct ShipAttempt: Sendable, Equatable {
    /// Wall seconds from sending to the answer (or failure).
    public var seconds: Double
    /// Items in the request (events, alerts).
    public var events: Int
    /// nil: delivered.
    public var failure: ShipFailureReason?
}
