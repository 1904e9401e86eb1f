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

    init() {}

    /// Calls `handler` with the events of `eventType` of every later commit that stores some.
    public func subscribe(eventType: String, _ handler: @escaping @Sendable ([OutboxEvent]) -> Void) {
        subscribers.withLock { $0.append((eventType, handler)) }
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
