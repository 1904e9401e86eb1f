import Foundation
public import Logging
public import Outbox
public import ServiceLifecycle
public import UsageModel

/// What the notifier is doing, for /metrics: its delivery loop's counts and breaker, and its book.
public struct AlertmanagerSnapshot: Sendable, Equatable {
    public var delivery = DeliverySnapshot()
    public var activeAlerts = 0
    public var pendingResolves = 0
    /// Resolves dropped undelivered beyond `maxPendingResolves`.
    public var resolvesDropped = 0

    public init() {}

    public var breakerState: CircuitBreaker.State { delivery.breakerState }
    public var requests: Int { delivery.requests }
    public var alertsSent: Int { delivery.delivered }
    /// Alerts Alertmanager refused on their own (a 400, 413 or 422 for the one alert).
    public var alertsRejected: Int { delivery.refused }
    public var failures: [ShipFailureReason: Int] { delivery.failures }
    public var lastError: String? { delivery.lastError }
    public var lastSuccessAt: Double? { delivery.lastDeliveryAt }
}

/// Tells Alertmanager about threshold alerts: POST `<alertmanager_url>/api/v2/alerts`.
///
/// A thin user of the shared delivery loop: the `AlertBook` says what is due (the active alerts
/// every `resendSeconds`, pending resolves until taken), `HTTPTransport` sends it, and the loop
/// does what the shipper's does — the same `RetryPolicy` (full-jitter backoff, Retry-After),
/// `CircuitBreaker`, `ResponseClassifier`, bisection of a 400 down to the one alert Alertmanager
/// refuses (not sent again), and the clock-step bounds, so a wall clock stepped back does not
/// stall the resends (Alertmanager would end alerts that still fire once their endsAt passed).
///
/// The notifier learns of threshold events from the committed outbox rows (`follow(_:)`): the
/// database hands it the threshold events of each metering commit right after the commit. Build it
/// with the firing events of the stored threshold states (`ThresholdEvaluator.firingEvents`) so a
/// restarted agent sends again what still fires. A graceful shutdown tries once more to deliver
/// pending resolves and leaves active alerts to their `endsAt`, so a restart does not resolve and
/// re-fire them.
public final class AlertmanagerNotifier: Service, Sendable {
    public let settings: AlertmanagerSettings
    let logger: Logger
    let now: @Sendable () -> Double
    let book: LockedSource<AlertBook>
    let delivery = DeliveryStatus()
    let wakeUp = WakeUp()
    let transport: HTTPTransport

    /// - Parameters:
    ///   - active: firing events of alerts that are active already (after a restart); sent when
    ///     `run()` starts.
    ///   - now: the clock, unix seconds.
    public init(
        settings: AlertmanagerSettings, logger: Logger, active events: [ThresholdEvent] = [],
        now: (@Sendable () -> Double)? = nil
    ) {
        self.settings = settings
        self.logger = logger
        self.now = now ?? { Date().timeIntervalSince1970 }
        book = LockedSource(AlertBook(settings: settings, firing: events))
        transport = HTTPTransport(
            settings: HTTPTransport.Settings(
                url: settings.alertsURL, headers: settings.headers, caFile: nil,
                connectTimeoutSeconds: settings.connectTimeoutSeconds,
                requestTimeoutSeconds: settings.requestTimeoutSeconds),
            tls: nil)
    }

    /// Learns of the threshold events every metering commit of `database` stores, right after the
    /// commit (before the shipper can deliver and delete them).
    public func follow(_ database: AgentDatabase) {
        database.commits.subscribe(eventType: ThresholdEvent.eventType) { [weak self] events in
            self?.committed(events)
        }
    }

    /// Committed outbox rows of threshold events: decoded and applied. A payload that does not
    /// decode is logged and skipped (the billing consumer still gets it from the outbox).
    func committed(_ rows: [OutboxEvent]) {
        let decoder = JSONDecoder()
        var events: [ThresholdEvent] = []
        for row in rows where row.eventType == ThresholdEvent.eventType {
            do {
                events.append(try decoder.decode(ThresholdEvent.self, from: row.payload))
            } catch {
                logger.error(
                    "cannot read a committed threshold event; not sent to alertmanager",
                    metadata: ["event.id": "\(row.eventID)", "error": "\(error)"])
            }
        }
        apply(events)
    }

    /// Takes threshold events, in order, and sends what changed at once (or at the end of a
    /// backoff). Committed events arrive through `follow(_:)`; tests apply their own.
    public func apply(_ events: [ThresholdEvent]) {
        guard !events.isEmpty else { return }
        let now = self.now()
        let dropped = book.withLock { $0.apply(events, now: now) }
        for resolve in dropped {
            logger.warning(
                "too many undelivered alert resolves; dropped the oldest (Alertmanager ends it at its endsAt)",
                metadata: ["alert.name": "\(resolve.labels["alertname"] ?? "")"])
        }
        wakeUp.wake()
    }

    /// The alerts that would be sent now: the active ones (endsAt ahead) and the pending resolves.
    public func pendingAlerts() -> [AlertmanagerAlert] {
        let now = self.now()
        return book.withLock { $0.outgoing(now: now).map(\.alert) }
    }

    public var snapshot: AlertmanagerSnapshot {
        var snapshot = AlertmanagerSnapshot()
        snapshot.delivery = delivery.snapshot
        (snapshot.activeAlerts, snapshot.pendingResolves, snapshot.resolvesDropped) = book.withLock {
            ($0.active.count, $0.resolves.count, $0.resolvesDropped)
        }
        return snapshot
    }

    public func run() async throws {
        logger.info("alertmanager notifier started", metadata: ["alertmanager.url": "\(settings.alertsURL)"])
        var loop = makeLoop()
        await loop.run()
        await shutdown()
        logger.info("alertmanager notifier stopped")
    }

    /// Closes the HTTP client; `run()` does it when it returns. Needed only for a notifier that was
    /// never run.
    public func shutdown() async {
        await transport.shutdown()
    }

    /// The delivery loop over the book: what `run()` runs, and tests step.
    func makeLoop() -> DeliveryLoop<LockedSource<AlertBook>> {
        DeliveryLoop(
            source: book, policy: settings.deliveryPolicy,
            endpoint: DeliveryEndpoint(
                type: { "alertmanager" }, name: "alertmanager", refusalHint: "alerting.alertmanager_url and credentials",
                itemsKey: "alert.names"),
            logger: logger, status: delivery, wakeUp: wakeUp, now: now,
            send: { [transport] items in
                let body: Data
                do {
                    body = try AlertmanagerAlert.body(items.map(\.alert))
                } catch {
                    // Unreachable for string maps and dates; refusing is the honest outcome if it ever is.
                    return .rejected(reason: .http400, detail: "cannot encode alerts: \(error)", bisectable: items.count > 1)
                }
                return await transport.post(body, contentType: "application/json")
            })
    }
}
