/// One item a delivery loop sends: an outbox event, an alert.
protocol DeliveryItem: Sendable {
    /// Attempts including the one being made: the loop backs off by the fewest of a batch.
    var attempts: Int { get }
    /// A short name for logs (an event id, an alert name).
    var logName: String { get }
}

/// Where a `DeliveryLoop` takes its batches from and records what became of them: the outbox for
/// the shipper, the alert book for the Alertmanager notifier.
///
/// The source owns the items' state: which are due, when a retried one is due again, what a
/// refusal does to one. The loop owns everything about the endpoint: sending, classifying,
/// backoff, Retry-After, the circuit breaker and the clock-step bounds. Times are wall seconds.
protocol DeliverySource {
    associatedtype Item: DeliveryItem

    /// What the log says when the endpoint refused items for good, e.g. "… moved to the dead letters".
    static var refusalMessage: String { get }

    /// Work the source does at the start of every round, before anything is taken.
    mutating func prepare(now: Double)

    /// The next batch of due items, oldest first; empty when nothing is due.
    mutating func take(now: Double) throws -> [Item]

    /// Whether another batch is likely due right after `batch` (it was a full one): the loop then
    /// takes it (`take(now:after:)`) while `batch` is being sent, instead of after.
    func takesAhead(after batch: [Item]) -> Bool

    /// The batch that follows `inFlight`, taken while `inFlight` is still being sent and its outcome
    /// not recorded: the due items after it, never one of its own. The loop sends it next round,
    /// whatever becomes of `inFlight`.
    mutating func take(now: Double, after inFlight: [Item]) throws -> [Item]

    /// The wall time at which the source next has work for the loop: its earliest pending item
    /// falls due, or a chore of its own (the outbox prunes audit records hourly); nil when nothing
    /// is pending. The loop sleeps until then unless woken, so a source that gains items outside
    /// the loop (a commit, an applied event) must wake it.
    mutating func nextWorkAt(now: Double) throws -> Double?

    /// The endpoint took `batch`: it counts as delivered.
    mutating func acknowledge(_ batch: [Item], now: Double) throws

    /// `batch` failed and is due again at `time`; `error` says why.
    mutating func retry(_ batch: [Item], at time: Double, error: String) throws

    /// The endpoint refused `batch` for good (a verdict on it): it is not sent again.
    mutating func refuse(_ batch: [Item], reason: String, now: Double) throws

    /// Brings every wait of the source that ends later than its cap from `now` (retries: `retryCap`)
    /// back to it; returns how many items moved. Called when the wall clock went backwards.
    mutating func boundWaits(now: Double, retryCap: Double) throws -> Int

    /// A graceful shutdown began: from now on `take` offers only what must go before the process
    /// ends.
    mutating func startDrain()
}

extension DeliverySource {
    func prepare(now: Double) {}
    func startDrain() {}
    func takesAhead(after batch: [Item]) -> Bool { false }
    func take(now: Double, after inFlight: [Item]) throws -> [Item] { [] }
}
