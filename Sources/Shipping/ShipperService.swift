import Foundation
public import Logging
public import EventThreads
public import Outbox
public import ServiceLifecycle

/// How the shipper batches, retries and protects the consumer.
public struct ShipperSettings: Sendable {
    public var batchMaxEvents: Int
    public var batchMaxBytes: Int
    public var retry: RetryPolicy
    public var failureThreshold: Int
    public var openSeconds: Double
    /// The longest the shipper sleeps between rounds. It needs no poll: every commit that stores
    /// events (and every replay) wakes it, and otherwise it sleeps until the next retry, the
    /// breaker's half-open time or the hourly audit pruning. Tests and benches shorten it.
    public var longestWaitSeconds: Double
    /// How long a graceful shutdown keeps delivering what is pending.
    public var drainSeconds: Double
    /// Gaps and baselines are kept at least this long (they are audit records, not usage; see
    /// `AgentDatabase.pruneAuditRecords`), and looked at again every `auditPruneSeconds`.
    public var auditRetentionSeconds: Double
    public var auditPruneSeconds: Double
    /// The most events a second the shipper sends on average (`sink.max_events_per_second`); nil:
    /// no cap. Bursts of up to this many (or one batch if that is more) and one batch beyond go at once.
    public var maxEventsPerSecond: Double?
    /// How long after its period ended an event is first offered: this host's offset in the
    /// fleet's spread (`FleetPacing.offset`), so hosts that close periods together do not all send
    /// in the same second. Retries and a backlog are not held.
    public var holdSeconds: Double

    public init(
        batchMaxEvents: Int = 500, batchMaxBytes: Int = 4 << 20, retry: RetryPolicy = RetryPolicy(),
        failureThreshold: Int = 5, openSeconds: Double = 30, longestWaitSeconds: Double = .infinity, drainSeconds: Double = 10,
        auditRetentionSeconds: Double = 7 * 86_400, auditPruneSeconds: Double = 3_600, maxEventsPerSecond: Double? = nil,
        holdSeconds: Double = 0
    ) {
        self.batchMaxEvents = batchMaxEvents
        self.batchMaxBytes = batchMaxBytes
        self.retry = retry
        self.failureThreshold = failureThreshold
        self.openSeconds = openSeconds
        self.longestWaitSeconds = longestWaitSeconds
        self.drainSeconds = drainSeconds
        self.auditRetentionSeconds = auditRetentionSeconds
        self.auditPruneSeconds = auditPruneSeconds
        self.maxEventsPerSecond = maxEventsPerSecond
        self.holdSeconds = holdSeconds
    }
}

/// Delivers the outbox to a sink: oldest first, in batches, at least once.
///
/// An event leaves the outbox only when the sink acknowledged it (deleted) or refused it for good
/// (moved to the dead letters, with the reason). Retryable failures — the endpoint refusing the
/// request (401, 403, 404, …) among them — back off with full jitter and honour Retry-After;
/// consecutive failures open the circuit breaker, and nothing is sent while it is open. A verdict
/// (400, 413, 422) on a batch is bisected so one poison event cannot hold the others back, and only
/// that event is dead-lettered. Hourly, audit records nothing needs any more are pruned. All of it
/// is the shared `DeliveryLoop` over the outbox (`OutboxSource`); the service adds the replaceable
/// sink.
public struct ShipperService: Service {
    let database: AgentDatabase
    let slot: SinkSlot
    /// The sink in use now.
    var sink: any Sink { slot.current }
    let settings: ShipperSettings
    let logger: Logger
    public let status: ShipperStatus
    let now: @Sendable () -> Double
    let onAttempt: @Sendable (ShipAttempt) -> Void
    let onDeadLettered: @Sendable (Int) -> Void
    /// The thread `run()` runs on, if the caller gives it one (`withTaskExecutorPreference`): the
    /// shipper's sleeps then park it, with no other thread involved.
    let thread: EventThread?

    public init(
        database: AgentDatabase, sink: any Sink, settings: ShipperSettings, logger: Logger,
        status: ShipperStatus = ShipperStatus(), now: (@Sendable () -> Double)? = nil,
        onAttempt: @escaping @Sendable (ShipAttempt) -> Void = { _ in },
        onDeadLettered: @escaping @Sendable (Int) -> Void = { _ in }, thread: EventThread? = nil
    ) {
        self.thread = thread
        self.onAttempt = onAttempt
        self.onDeadLettered = onDeadLettered
        self.database = database
        self.slot = SinkSlot(sink)
        self.settings = settings
        self.logger = logger
        self.status = status
        self.now = now ?? { Date().timeIntervalSince1970 }
    }

    public func run() async throws {
        var shipper = Shipper(service: self)
        logger.info("shipper started", metadata: ["sink.type": "\(sink.type)"])
        await shipper.run()
        await slot.shutDownRetired()
        await sink.shutdown()
        logger.info("shipper stopped")
    }
}

extension ShipperService {
    /// Ships to `sink` from the next batch on (a SIGHUP with a new sink configuration). The batch
    /// in flight finishes on the old sink, which is then shut down.
    public func replaceSink(_ sink: any Sink) {
        slot.replace(with: sink)
        logger.notice("sink replaced", metadata: ["sink.type": "\(sink.type)"])
    }
}

/// The shipper's loop: the delivery loop over the outbox.
typealias Shipper = DeliveryLoop<OutboxSource>

extension DeliveryLoop where Source == OutboxSource {
    init(service: ShipperService) {
        let slot = service.slot
        let settings = service.settings
        let wakeUp = WakeUp(thread: service.thread)
        service.database.commits.whenEventsStored { [weak wakeUp] in wakeUp?.wake() }
        self.init(
            source: OutboxSource(database: service.database, settings: settings, logger: service.logger),
            policy: DeliveryPolicy(
                retry: settings.retry, failureThreshold: settings.failureThreshold, openSeconds: settings.openSeconds,
                longestWaitSeconds: settings.longestWaitSeconds, drainSeconds: settings.drainSeconds,
                maxItemsPerSecond: settings.maxEventsPerSecond,
                burstItems: max(Double(settings.batchMaxEvents), settings.maxEventsPerSecond ?? 1)),
            endpoint: DeliveryEndpoint(
                type: { slot.current.type }, name: "the sink", refusalHint: "sink.url and sink.token_file",
                itemsKey: "event.ids"),
            logger: service.logger, status: service.status, wakeUp: wakeUp, now: service.now,
            onAttempt: service.onAttempt,
            onRefused: service.onDeadLettered, roundStarted: { await slot.shutDownRetired() }, sendThreadName: "hm-ship-send",
            send: { batch in await slot.current.send(batch.map(\.event)) })
    }
}
