public import Outbox

/// Where shipped events go. `send` reports an outcome and never throws: every failure is a
/// classified `ShipOutcome`.
public protocol EventSink: Sendable {
    /// The `sink.type` name: the log field and metric label.
    var type: String { get }
    func send(_ batch: [OutboxEvent]) async -> ShipOutcome
    func shutdown() async
}
