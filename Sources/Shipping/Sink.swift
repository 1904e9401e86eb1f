public import Outbox

/// Where shipped events go: the billing consumer's endpoint, a file, stdout; later a broker.
///
/// The contract is the outbox's: an event counts as delivered when, and only when, `send` returns
/// `.delivered` for its batch, and a sink returns `.delivered` only once a durable store holds every
/// event of the batch — a sink's acknowledgement is a durable store's. For `HTTPSink` that is a 2xx
/// answer (the consumer stored the batch), for `FileSink` the lines written and fsynced, for
/// `StdoutSink` the lines written to the descriptor (its reader owns them then); a broker sink
/// answers `.delivered` on the broker's acknowledgement (a JetStream PubAck, a Kafka delivery
/// report with acks=all), never on a send that was only buffered. On `.delivered` the shipper
/// deletes the events from the outbox; on anything else they stay and are sent again (so a
/// consumer must dedupe by `event_id`: delivery is at least once).
///
/// `send` reports an outcome and never throws: every failure is a classified `ShipOutcome`.
/// `.rejected` is a verdict on the events themselves (a 400, 413 or 422), which the shipper
/// bisects down to the one event it is about and dead-letters; everything else is `.retryable`.
public protocol Sink: Sendable {
    /// The `sink.type` name: the log field and metric label.
    var type: String { get }
    func send(_ batch: [OutboxEvent]) async -> ShipOutcome
    /// Releases what the sink holds (connections); called once, after its last `send`.
    func shutdown() async
}
