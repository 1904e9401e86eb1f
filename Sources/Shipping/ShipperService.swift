import Foundation
public import Logging
public import Outbox
public import ServiceLifecycle
import Synchronization

/// How the shipper batches, retries and protects the consumer.
public struct ShipperSettings: Sendable {
    public var batchMaxEvents: Int
    public var batchMaxBytes: Int
    public var retry: RetryPolicy
    public var failureThreshold: Int
    public var openSeconds: Double
    /// How often an empty outbox is looked at again.
    public var pollSeconds: Double
    /// How long a graceful shutdown keeps delivering what is pending.
    public var drainSeconds: Double
    /// Gaps and baselines are kept at least this long (they are audit records, not usage; see
    /// `AgentDatabase.pruneAuditRecords`), and looked at again every `auditPruneSeconds`.
    public var auditRetentionSeconds: Double
    public var auditPruneSeconds: Double

    public init(
        batchMaxEvents: Int = 500, batchMaxBytes: Int = 4 << 20, retry: RetryPolicy = RetryPolicy(),
        failureThreshold: Int = 5, openSeconds: Double = 30, pollSeconds: Double = 1, drainSeconds: Double = 10,
        auditRetentionSeconds: Double = 7 * 86_400, auditPruneSeconds: Double = 3_600
    ) {
        self.batchMaxEvents = batchMaxEvents
        self.batchMaxBytes = batchMaxBytes
        self.retry = retry
        self.failureThreshold = failureThreshold
        self.openSeconds = openSeconds
        self.pollSeconds = pollSeconds
        self.drainSeconds = drainSeconds
        self.auditRetentionSeconds = auditRetentionSeconds
        self.auditPruneSeconds = auditPruneSeconds
    }
}

/// What the shipper is doing, for /health and /metrics.
public struct ShipperSnapshot: Sendable, Equatable {
    public var breakerState: CircuitBreaker.State = .closed
    public var consecutiveFailures = 0
    public var lastError: String?
    /// The endpoint refuses the requests themselves (401, 403, 404, 407, another 4xx that is no
    /// verdict on the events): the answer, e.g. "HTTP 401: …". Cleared when the consumer next takes
    /// or judges a batch. It will not pass by itself, so `/health` shows it.
    public var endpointRefusal: String?
    public var lastDeliveryAt: Double?
    public var requests = 0
    public var eventsDelivered = 0
    public var eventsDeadLettered = 0
    public var failures: [ShipFailureReason: Int] = [:]
}

/// Shared view of the shipper's state.
public final class ShipperStatus: Sendable {
    private let state = Mutex(ShipperSnapshot())
    public init() {}
    public var snapshot: ShipperSnapshot { state.withLock { $0 } }
    public func update(_ body: (inout ShipperSnapshot) -> Void) { state.withLock { body(&$0) } }
}

/// Delivers the outbox to a sink: oldest first, in batches, at least once.
///
/// An event leaves the outbox only when the sink acknowledged it (deleted) or refused it for good
/// (moved to the dead letters, with the reason). Retryable failures — the endpoint refusing the
/// request (401, 403, 404, …) among them — back off with full jitter and honour Retry-After;
/// consecutive failures open the circuit breaker, and nothing is sent while it is open. A verdict
/// (400, 413, 422) on a batch is bisected so one poison event cannot hold the others back, and only
/// that event is dead-lettered. Hourly, audit records nothing needs any more are pruned.
public struct ShipperService: Service {
    let database: AgentDatabase
    let slot: SinkSlot
    /// The sink in use now.
    var sink: any EventSink { slot.current }
    let settings: ShipperSettings
    let logger: Logger
    public let status: ShipperStatus
    let now: @Sendable () -> Double
    let onAttempt: @Sendable (ShipAttempt) -> Void
    let onDeadLettered: @Sendable (Int) -> Void

    public init(
        database: AgentDatabase, sink: any EventSink, settings: ShipperSettings, logger: Logger,
        status: ShipperStatus = ShipperStatus(), now: (@Sendable () -> Double)? = nil,
        onAttempt: @escaping @Sendable (ShipAttempt) -> Void = { _ in },
        onDeadLettered: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
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
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let wait = await shipper.step()
            if wait > 0 {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(Int64(wait * 1000))) }
            }
        }
        // Graceful shutdown: keep delivering what is due until the outbox is empty or time is up.
        let deadline = now() + settings.drainSeconds
        while !Task.isCancelled, now() < deadline {
            let wait = await shipper.step()
            if wait > 0 { break }
        }
        await slot.shutDownRetired()
        await sink.shutdown()
        logger.info("shipper stopped")
    }
}

extension ShipperService {
    /// Ships to `sink` from the next batch on (a SIGHUP with a new sink configuration). The batch
    /// in flight finishes on the old sink, which is then shut down.
    public func replaceSink(_ sink: any EventSink) {
        slot.replace(with: sink)
        logger.notice("sink replaced", metadata: ["sink.type": "\(sink.type)"])
    }
}

/// The sink the shipper uses, replaceable while it runs.
final class SinkSlot: Sendable {
    private let state: Mutex<(current: any EventSink, retired: [any EventSink])>

    init(_ sink: any EventSink) {
        state = Mutex((sink, []))
    }

    var current: any EventSink { state.withLock { $0.current } }

    func replace(with sink: any EventSink) {
        state.withLock {
            $0.retired.append($0.current)
            $0.current = sink
        }
    }

    /// Shuts down sinks replaced since the last call; called between batches, so none is in use.
    func shutDownRetired() async {
        let retired = state.withLock { state -> [any EventSink] in
            defer { state.retired = [] }
            return state.retired
        }
        for sink in retired { await sink.shutdown() }
    }
}

/// One request to the sink, for the agent's metrics.
public struct ShipAttempt: Sendable, Equatable {
    /// Wall seconds from sending to the answer (or failure).
    public var seconds: Double
    public var events: Int
    /// nil: delivered.
    public var failure: ShipFailureReason?
}

/// The shipper's mutable loop state, kept out of the Service value.
struct Shipper {
    let service: ShipperService
    var breaker: CircuitBreaker
    var random = SystemRandomNumberGenerator()
    /// A Retry-After from the consumer pauses all sending until then.
    var pausedUntil: Double = 0
    /// The wall time of the previous round; nil before the first. Retry times, the pause and the
    /// breaker are wall times (retry times are stored and outlive the process), so a step back of
    /// the wall clock is noticed here and every wait is bounded again by its longest legal length.
    var previousNow: Double?
    /// When audit records are next pruned; the first round prunes.
    var nextPruneAt = -Double.infinity

    init(service: ShipperService) {
        self.service = service
        breaker = CircuitBreaker(
            failureThreshold: service.settings.failureThreshold, openSeconds: service.settings.openSeconds)
    }

    var logger: Logger { service.logger }

    /// No wait may end later than its cap from `now`: Retry-After pauses and retries wait at most
    /// `retry.cap_seconds`, an open breaker at most its longest open time. Run at the first round
    /// (the clock may have stepped back while the agent was down) and whenever the wall clock went
    /// backwards since the previous round. Nothing is lost either way; this only keeps a clock step
    /// back of an hour from holding deliveries for an hour.
    mutating func boundWaits(now: Double, steppedBackFrom previous: Double?) {
        let cap = service.settings.retry.capSeconds
        pausedUntil = min(pausedUntil, now + cap)
        nextPruneAt = min(nextPruneAt, now + service.settings.auditPruneSeconds)
        breaker.bound(now: now)
        do {
            let moved = try service.database.bringRetriesForward(notAfter: now + cap)
            if let previous {
                logger.notice(
                    "wall clock stepped back; waits bounded again",
                    metadata: ["clock.step_seconds": "\(String(format: "%.3f", previous - now))", "retries.moved": "\(moved)"])
            } else if moved > 0 {
                logger.notice("retries scheduled beyond the retry cap brought forward", metadata: ["retries.moved": "\(moved)"])
            }
        } catch {
            logger.error("cannot reschedule retries", metadata: ["error": "\(error)"])
        }
    }

    /// One round: sends one batch if it may. Returns how long to wait before the next round
    /// (0: go on at once).
    mutating func step() async -> Double {
        await service.slot.shutDownRetired()
        let now = service.now()
        if previousNow.map({ now < $0 }) ?? true { boundWaits(now: now, steppedBackFrom: previousNow) }
        previousNow = now
        if now >= nextPruneAt {
            pruneAuditRecords(now: now)
            nextPruneAt = now + service.settings.auditPruneSeconds
        }
        if now < pausedUntil { return min(pausedUntil - now, service.settings.pollSeconds) }
        if let until = breaker.blockedUntil(now: now) { return min(until - now, service.settings.pollSeconds) }
        let batch: [LeasedEvent]
        do {
            batch = try service.database.lease(
                now: now, maxEvents: service.settings.batchMaxEvents, maxBytes: service.settings.batchMaxBytes)
        } catch {
            logger.error("cannot read the outbox", metadata: ["error": "\(error)"])
            return service.settings.pollSeconds
        }
        guard !batch.isEmpty else { return service.settings.pollSeconds }
        let before = breaker.state
        _ = breaker.allowsRequest(now: now)
        let answered = await deliver(batch)
        if answered {
            breaker.recordSuccess()
        } else {
            breaker.recordFailure(now: service.now())
        }
        if breaker.state != before {
            logger.log(
                level: breaker.state == .closed ? .info : .warning, "circuit breaker changed",
                metadata: ["breaker.from": "\(before.name)", "breaker.to": "\(breaker.state.name)",
                           "breaker.failures": "\(breaker.consecutiveFailures)"])
        }
        let state = breaker.state
        let failures = breaker.consecutiveFailures
        service.status.update {
            $0.breakerState = state
            $0.consecutiveFailures = failures
        }
        return 0
    }

    /// Removes gaps and baselines older than the retention that no undelivered usage needs. A
    /// failure is logged and tried again at the next pruning: nothing depends on it but room.
    func pruneAuditRecords(now: Double) {
        do {
            let pruned = try service.database.pruneAuditRecords(
                recordedBefore: Int64((now - service.settings.auditRetentionSeconds).rounded(.down)))
            if pruned > 0 { logger.info("audit records pruned", metadata: ["audit.pruned": "\(pruned)"]) }
        } catch {
            logger.error("cannot prune audit records", metadata: ["error": "\(error)"])
        }
    }

    /// Sends a batch and records what became of each event. Returns whether the consumer answered
    /// (delivered or refused), as opposed to failing or not being reached.
    mutating func deliver(_ batch: [LeasedEvent]) async -> Bool {
        let started = ContinuousClock.now
        let outcome = await service.sink.send(batch.map(\.event))
        let elapsed = ContinuousClock.now - started
        service.status.update { $0.requests += 1 }
        let failure: ShipFailureReason? =
            switch outcome {
            case .delivered: nil
            case .retryable(let reason, _, _), .rejected(let reason, _, _): reason
            }
        service.onAttempt(
            ShipAttempt(
                seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                events: batch.count, failure: failure))
        let ids = batch.map(\.id)
        let now = service.now()
        do {
            switch outcome {
            case .delivered:
                try service.database.acknowledge(ids)
                service.status.update {
                    $0.eventsDelivered += batch.count
                    $0.lastDeliveryAt = now
                    $0.lastError = nil
                    $0.endpointRefusal = nil
                }
                return true
            case .retryable(let reason, let detail, let retryAfter):
                let attempt = (batch.map(\.attempts).min() ?? 1) - 1
                let delay = service.settings.retry.delay(attempt: attempt, retryAfter: retryAfter, using: &random)
                if let retryAfter { pausedUntil = max(pausedUntil, now + min(retryAfter, service.settings.retry.capSeconds)) }
                try service.database.scheduleRetry(ids, at: now + delay, error: "\(reason.rawValue): \(detail)")
                service.status.update {
                    $0.failures[reason, default: 0] += 1
                    $0.lastError = detail
                    if reason.isEndpointRefusal { $0.endpointRefusal = String(detail.prefix(200)) }
                }
                // A refused request (a rotated token, a wrong URL) will not pass by itself.
                logger.log(
                    level: reason.isEndpointRefusal ? .error : .warning,
                    reason.isEndpointRefusal
                        ? "the sink refused the request; check sink.url and sink.token_file; will retry"
                        : "delivery failed; will retry",
                    metadata: ["sink.type": "\(service.sink.type)", "ship.reason": "\(reason.rawValue)",
                               "ship.events": "\(batch.count)", "retry.in_seconds": "\(Int(delay.rounded()))",
                               "error": "\(detail)"])
                return false
            case .rejected(let reason, let detail, let bisectable):
                service.status.update {
                    $0.failures[reason, default: 0] += 1
                    $0.endpointRefusal = nil
                }
                if bisectable, batch.count > 1 {
                    let middle = batch.count / 2
                    let first = Array(batch[..<middle])
                    let second = Array(batch[middle...])
                    guard await deliver(first) else {
                        // The consumer stopped answering halfway: the rest waits for the retry too.
                        try service.database.scheduleRetry(
                            second.map(\.id), at: now + service.settings.retry.baseSeconds, error: "bisection interrupted")
                        return false
                    }
                    return await deliver(second)
                }
                try service.database.deadLetter(ids, reason: "\(reason.rawValue): \(detail)", now: now)
                service.onDeadLettered(batch.count)
                service.status.update {
                    $0.eventsDeadLettered += batch.count
                    $0.lastError = detail
                }
                logger.error(
                    "events refused by the consumer; moved to the dead letters",
                    metadata: ["sink.type": "\(service.sink.type)", "ship.reason": "\(reason.rawValue)",
                               "ship.events": "\(batch.count)", "event.ids": "\(batch.map(\.event.eventID).prefix(5).joined(separator: ","))",
                               "error": "\(detail)"])
                return true
            }
        } catch {
            // The outbox could not record the outcome: the events stay pending and go again.
            logger.error("cannot record a delivery outcome", metadata: ["error": "\(error)"])
            if case .retryable = outcome { return false }
            return true
        }
    }
}
