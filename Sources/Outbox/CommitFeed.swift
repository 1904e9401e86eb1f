import Synchronization

/// Tells subscribers which events each metering commit stored, right after the commit.
///
/// The Alertmanager notifier learns of threshold events here, from the committed rows rather than
/// from the sampler: a subscriber is called on the database's writer queue once the transaction
/// has committed and before any later write runs, so it sees every stored event of its type even
/// when the shipper delivers and deletes it at once (reading "rows after id N" later could miss
/// one). Only `AgentDatabase.commit` publishes: a replayed dead letter is no new event. A
/// subscriber must be quick and must not write to the database.
public final class CommitFeed: Sendable {
    typealias Handler = @Sendable ([OutboxEvent]) -> Void

    private let subscribers = Mutex<[(eventType: String, handler: Handler)]>([])
    private let storeWatchers = Mutex<[@Sendable () -> Void]>([])

    init() {}

    /// Calls `handler` with the events of `eventType` of every later commit that stores some.
    public func subscribe(eventType: String, _ handler: @escaping @Sendable ([OutboxEvent]) -> Void) {
        subscribers.withLock { $0.append((eventType, handler)) }
    }

    /// Calls `handler` after every later transaction that made events pending: a metering commit
    /// that stored some, dead letters replayed. The shipper sleeps until this (or a due retry)
    /// instead of polling. Writes by another process (`hostmeter outbox replay` while the agent
    /// runs) are not seen: their events go with the next commit's wake-up, within one interval.
    public func whenEventsStored(_ handler: @escaping @Sendable () -> Void) {
        storeWatchers.withLock { $0.append(handler) }
    }

    /// Whether anyone watches stores: a commit registers its after-commit call only then.
    var watchesStores: Bool {
        storeWatchers.withLock { !$0.isEmpty }
    }

    /// Tells the store watchers that a committed transaction made events pending.
    func eventsStored() {
        for handler in storeWatchers.withLock({ $0 }) { handler() }
    }

    /// The event types someone listens to: a commit keeps only those.
    var eventTypes: Set<String> {
        subscribers.withLock { Set($0.map(\.eventType)) }
    }

    /// Hands the committed `events` to their subscribers.
    func publish(_ events: [OutboxEvent]) {
        for (eventType, handler) in subscribers.withLock({ $0 }) {
            let matching = events.filter { $0.eventType == eventType }
            if !matching.isEmpty { handler(matching) }
        }
    }
}
