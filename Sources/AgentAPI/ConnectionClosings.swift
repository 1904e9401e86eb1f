import Logging
import NIOCore
import Prometheus
import Synchronization
import RuntimeState

/// Counts and logs the connections the API closes to protect itself. Counted one by one in
/// `hostmeter_api_connections_closed_total{reason}`; logged at most once a minute per reason, with
/// how many went unlogged since, so an attack cannot flood the journal.
final class ConnectionClosings: Sendable {
    static let logInterval = TimeAmount.seconds(60)

    private let counters: [APIConnectionCloseReason: Counter]
    private let logger: Logger
    private let logged = Mutex<[APIConnectionCloseReason: (at: NIODeadline, unlogged: Int)]>([:])

    init(registry: PrometheusCollectorRegistry, logger: Logger) {
        var counters: [APIConnectionCloseReason: Counter] = [:]
        for reason in APIConnectionCloseReason.allCases {
            counters[reason] = registry.makeCounter(
                descriptor: AgentMetrics.name(
                    "hostmeter_api_connections_closed_total",
                    help: "API connections closed to protect the API: over a peer's or the total connection limit, or too slow to send a request."),
                labels: [("reason", reason.rawValue)])
        }
        self.counters = counters
        self.logger = logger
    }

    func record(_ reason: APIConnectionCloseReason, peer: PeerAddress, now: NIODeadline = .now()) {
        counters[reason]?.increment()
        let unlogged = logged.withLock { logged -> Int? in
            if let last = logged[reason], now - last.at < Self.logInterval {
                logged[reason] = (last.at, last.unlogged + 1)
                return nil
            }
            defer { logged[reason] = (now, 0) }
            return logged[reason]?.unlogged ?? 0
        }
        guard let unlogged else { return }
        logger.warning(
            "API connection closed to protect the API",
            metadata: [
                "api.peer": "\(peer)", "api.close_reason": "\(reason.rawValue)",
                "api.closed_unlogged": "\(unlogged)",
            ])
    }
}
