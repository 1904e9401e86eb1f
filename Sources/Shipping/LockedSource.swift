import Synchronization

/// A delivery source that others change while its loop runs (the alert book: committed threshold
/// events arrive on the database's writer queue), behind a lock. Every call holds the lock only
/// for the source's own work, never across a send.
final class LockedSource<Base: DeliverySource>: DeliverySource, Sendable {
    typealias Item = Base.Item

    private let base: Mutex<Base>

    init(_ base: sending Base) {
        self.base = Mutex(base)
    }

    static var refusalMessage: String { Base.refusalMessage }

    /// Runs `body` with the source locked.
    func withLock<Result: Sendable>(_ body: (inout Base) -> Result) -> Result {
        base.withLock { body(&$0) }
    }

    func prepare(now: Double) { base.withLock { $0.prepare(now: now) } }
    func take(now: Double) throws -> [Item] { try base.withLock { try $0.take(now: now) } }
    func takesAhead(after batch: [Item]) -> Bool { base.withLock { $0.takesAhead(after: batch) } }
    func take(now: Double, after inFlight: [Item]) throws -> [Item] {
        try base.withLock { try $0.take(now: now, after: inFlight) }
    }
    func nextWorkAt(now: Double) throws -> Double? { try base.withLock { try $0.nextWorkAt(now: now) } }
    func acknowledge(_ batch: [Item], now: Double) throws { try base.withLock { try $0.acknowledge(batch, now: now) } }
    func retry(_ batch: [Item], at time: Double, error: String) throws {
        try base.withLock { try $0.retry(batch, at: time, error: error) }
    }
    func refuse(_ batch: [Item], reason: String, now: Double) throws {
        try base.withLock { try $0.refuse(batch, reason: reason, now: now) }
    }
    func boundWaits(now: Double, retryCap: Double) throws -> Int {
        try base.withLock { try $0.boundWaits(now: now, retryCap: retryCap) }
    }
    func startDrain() { base.withLock { $0.startDrain() } }
}
