import EventThreads
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// How a delivery loop retries and protects its endpoint.
struct DeliveryPolicy: Sendable {
    var retry: RetryPolicy
    var failureThreshold: Int
    var openSeconds: Double
    /// The longest sleep between rounds when nothing wakes the loop and the source has no work due
    /// sooner: how late a step of the wall clock can be noticed. The loop needs no poll: the source
    /// says when its next item falls due (`nextWorkAt`) and whoever adds items wakes it.
    var longestWaitSeconds: Double
    /// How long a graceful shutdown keeps delivering what the source drains.
    var drainSeconds: Double
    /// The most items a second, on average (`DrainRate`); nil: as fast as the endpoint takes them.
    var maxItemsPerSecond: Double? = nil
    /// The burst `maxItemsPerSecond` allows: what may go at once after a quiet spell.
    var burstItems: Double = 1
}

/// How a loop names its endpoint in the log.
struct DeliveryEndpoint: Sendable {
    /// The `sink.type` log field, read at each use (the shipper's sink can be replaced).
    var type: @Sendable () -> String
    /// Who refuses a request, in a sentence: "the sink", "alertmanager".
    var name: String
    /// What a person checks when the endpoint refuses the requests.
    var refusalHint: String
    /// The log field listing the first items of a refused batch.
    var itemsKey: String
}

/// Delivers a source's items to an endpoint at least once: the loop of the shipper (outbox →
/// sink) and of the Alertmanager notifier (alert book → Alertmanager).
///
/// Each round takes a batch of due items, sends it and records the outcome with the source: an
/// acknowledgement; a retryable failure, retried with `RetryPolicy`'s full-jitter backoff and the
/// endpoint's Retry-After (which pauses all sending); or a verdict (400, 413, 422), bisected so one
/// bad item cannot hold the others back, down to the one item it is about, which the source
/// refuses (dead letters, not sent again). Consecutive failures open the circuit breaker, and
/// nothing is sent while it is open. A graceful shutdown keeps delivering what the source drains
/// for `drainSeconds`.
///
/// Retry times, the pause and the breaker are wall times (the outbox's retry times are stored and
/// outlive the process), so a step back of the wall clock is noticed at the next round and every
/// wait is bounded again by its longest legal length (`boundWaits`); a step forward only shortens
/// waits. Between rounds the loop sleeps on the monotonic clock until the source's next due time,
/// a retry, the pause or the breaker's half-open time falls due, or a `WakeUp` ends the sleep (the
/// outbox's commits wake the shipper), at most `longestWaitSeconds`: an idle loop does not wake.
///
/// Draining a backlog, the loop takes the next batch while the current one is being sent
/// (`DeliverySource.takesAhead`): the send runs on a thread of its own (`SendThread`) while the
/// loop's thread leases the batch after it, so the outbox's transaction and the endpoint's
/// round trip overlap. The batch taken ahead goes next round whatever became of the one before it
/// (as it would have: a failed batch waits for its retry and the next one goes at once), after the
/// pause, the breaker and the rate cap allow it. Nothing is taken ahead while a rate cap applies or
/// the breaker is not closed. The acknowledgement of a delivered batch is recorded during the next
/// send when that one takes ahead too, and otherwise before anything else is sent, taken, waited
/// for or ended.
struct DeliveryLoop<Source: DeliverySource> {
    var source: Source
    let send: @Sendable ([Source.Item]) async -> ShipOutcome
    let policy: DeliveryPolicy
    let endpoint: DeliveryEndpoint
    let logger: Logger
    let status: DeliveryStatus
    let now: @Sendable () -> Double
    let onAttempt: @Sendable (ShipAttempt) -> Void
    let onRefused: @Sendable (Int) -> Void
    /// Runs before every round (the shipper shuts down sinks replaced since the last one).
    let roundStarted: @Sendable () async -> Void
    let wakeUp: WakeUp
    var breaker: CircuitBreaker
    var random = SystemRandomNumberGenerator()
    /// A Retry-After from the endpoint pauses all sending until then.
    var pausedUntil: Double = 0
    /// The wall time of the previous round; nil before the first.
    var previousNow: Double?
    /// The cap on the send rate, when the policy sets one. A graceful shutdown's drain is not
    /// capped: it is short, and what it leaves stays in the source for the next start.
    var rate: DrainRate?
    var draining = false
    /// The batch taken while the one before it was being sent: the next round sends it.
    var takenAhead: [Source.Item] = []
    /// A delivered batch whose acknowledgement the source records during the next send, and when
    /// it was delivered.
    var unacknowledged: (batch: [Source.Item], at: Double)?
    /// Where a send runs while the loop takes the batch after it.
    let sendThread: SendThread

    init(
        source: Source, policy: DeliveryPolicy, endpoint: DeliveryEndpoint, logger: Logger, status: DeliveryStatus,
        wakeUp: WakeUp = WakeUp(), now: @escaping @Sendable () -> Double,
        onAttempt: @escaping @Sendable (ShipAttempt) -> Void = { _ in },
        onRefused: @escaping @Sendable (Int) -> Void = { _ in },
        roundStarted: @escaping @Sendable () async -> Void = {}, sendThreadName: String = "hm-send",
        send: @escaping @Sendable ([Source.Item]) async -> ShipOutcome
    ) {
        self.sendThread = SendThread(name: sendThreadName)
        self.source = source
        self.policy = policy
        self.endpoint = endpoint
        self.logger = logger
        self.status = status
        self.wakeUp = wakeUp
        self.now = now
        self.onAttempt = onAttempt
        self.onRefused = onRefused
        self.roundStarted = roundStarted
        self.send = send
        breaker = CircuitBreaker(failureThreshold: policy.failureThreshold, openSeconds: policy.openSeconds)
        rate = policy.maxItemsPerSecond.map { DrainRate(perSecond: $0, burst: max(1, policy.burstItems)) }
    }

    /// Rounds until a graceful shutdown (or cancellation), then the drain.
    mutating func run() async {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let wait = await step()
            if wait > 0 {
                // A handler, not `cancelWhenGracefulShutdown`: that starts tasks on the shared pool
                // at every call, and an idle loop should touch nothing.
                await withGracefulShutdownHandler { [wakeUp] in
                    await wakeUp.sleep(seconds: wait)
                } onGracefulShutdown: { [wakeUp] in
                    wakeUp.wake()
                }
            }
        }
        // Graceful shutdown: keep delivering what the source drains until it is done or time is up.
        source.startDrain()
        draining = true
        let deadline = ContinuousClock.now + .milliseconds(Int64(policy.drainSeconds * 1000))
        while !Task.isCancelled, ContinuousClock.now < deadline {
            if await step() > 0 { break }
        }
        // A batch still taken ahead stays leased in the source and goes at the next start.
        recordAcknowledgement()
        sendThread.finish()
    }

    /// No wait may end later than its cap from `now`: Retry-After pauses and retries wait at most
    /// `retry.cap_seconds`, an open breaker at most its longest open time, and the source bounds
    /// its own. Run at the first round (the clock may have stepped back while the agent was down)
    /// and whenever the wall clock went backwards since the previous round. Nothing is lost either
    /// way; this only keeps a clock step back of an hour from holding deliveries for an hour.
    mutating func boundWaits(now: Double, steppedBackFrom previous: Double?) {
        let cap = policy.retry.capSeconds
        pausedUntil = min(pausedUntil, now + cap)
        breaker.bound(now: now)
        do {
            let moved = try source.boundWaits(now: now, retryCap: cap)
            if let previous {
                logger.notice(
                    "wall clock stepped back; waits bounded again",
                    metadata: ["sink.type": "\(endpoint.type())", "clock.step_seconds": "\(String(format: "%.3f", previous - now))",
                               "retries.moved": "\(moved)"])
            } else if moved > 0 {
                logger.notice(
                    "retries scheduled beyond the retry cap brought forward",
                    metadata: ["sink.type": "\(endpoint.type())", "retries.moved": "\(moved)"])
            }
        } catch {
            logger.error("cannot reschedule retries", metadata: ["sink.type": "\(endpoint.type())", "error": "\(error)"])
        }
    }

    /// One round: sends one batch if it may. Returns how long to wait before the next round
    /// (0: go on at once).
    mutating func step() async -> Double {
        await roundStarted()
        // An acknowledgement waits for the next send only when one goes this round.
        if takenAhead.isEmpty { recordAcknowledgement() }
        let now = self.now()
        if previousNow.map({ now < $0 }) ?? true { boundWaits(now: now, steppedBackFrom: previousNow) }
        previousNow = now
        source.prepare(now: now)
        if now < pausedUntil { return waiting(pausedUntil - now) }
        if let until = breaker.blockedUntil(now: now) { return waiting(until - now) }
        if !draining, let wait = rate?.wait(now: now), wait > 0 { return waiting(wait) }
        let batch: [Source.Item]
        if !takenAhead.isEmpty {
            batch = takenAhead
            takenAhead = []
        } else {
            do {
                batch = try source.take(now: now)
            } catch {
                logger.error("cannot read what is due", metadata: ["sink.type": "\(endpoint.type())", "error": "\(error)"])
                return min(policy.retry.baseSeconds, policy.longestWaitSeconds)
            }
        }
        guard !batch.isEmpty else { return idleWait(now: now) }
        let before = breaker.state
        _ = breaker.allowsRequest(now: now)
        rate?.spend(batch.count, now: now)
        // Only while the endpoint takes batches: one taken ahead of a failure may wait out a pause
        // or an open breaker, leased, its attempt counted.
        let takingAhead = (rate == nil || draining) && before == .closed && source.takesAhead(after: batch)
        // An acknowledgement left for this round's send is not held through a send of its own.
        if !takingAhead { recordAcknowledgement() }
        if await deliver(batch, takingAhead: takingAhead ? now : nil) {
            breaker.recordSuccess()
        } else {
            breaker.recordFailure(now: self.now(), jitter: Double.random(in: 0..<1, using: &random))
        }
        if breaker.state != before {
            logger.log(
                level: breaker.state == .closed ? .info : .warning, "circuit breaker changed",
                metadata: ["sink.type": "\(endpoint.type())", "breaker.from": "\(before.name)",
                           "breaker.to": "\(breaker.state.name)", "breaker.failures": "\(breaker.consecutiveFailures)"])
        }
        let (state, failures) = (breaker.state, breaker.consecutiveFailures)
        status.update {
            $0.breakerState = state
            $0.consecutiveFailures = failures
        }
        return 0
    }

    /// A wait of at most `longestWaitSeconds` with a batch taken ahead held back: no acknowledgement
    /// waits with it.
    mutating func waiting(_ seconds: Double) -> Double {
        recordAcknowledgement()
        return min(seconds, policy.longestWaitSeconds)
    }

    /// How long to sleep with nothing to send: until the source's next work falls due, at most
    /// `longestWaitSeconds`; unbounded (until woken) when the source has nothing pending.
    mutating func idleWait(now: Double) -> Double {
        let next: Double?
        do {
            next = try source.nextWorkAt(now: now)
        } catch {
            logger.error("cannot read what is due", metadata: ["sink.type": "\(endpoint.type())", "error": "\(error)"])
            return min(policy.retry.baseSeconds, policy.longestWaitSeconds)
        }
        // Work due now that `take` did not offer (written between the two reads) is taken at once
        // after a short pause, never in a busy loop.
        let wait = next.map { max($0 - now, Self.shortestWait) } ?? .infinity
        return min(wait, policy.longestWaitSeconds)
    }

    /// The shortest sleep between two rounds that found nothing to send.
    static var shortestWait: Double { 0.01 }

    /// Sends a batch and records what became of each item. Returns whether the endpoint answered
    /// (took or refused it), as opposed to failing or not being reached. With `takingAhead` (the
    /// round's time), the batch after it is taken while it is being sent.
    mutating func deliver(_ batch: [Source.Item], takingAhead: Double? = nil) async -> Bool {
        let started = ContinuousClock.now
        let outcome = if let now = takingAhead { await send(batch, takingAheadAt: now) } else { await send(batch) }
        let elapsed = ContinuousClock.now - started
        status.update { $0.requests += 1 }
        let failure: ShipFailureReason? =
            switch outcome {
            case .delivered: nil
            case .retryable(let reason, _, _), .rejected(let reason, _, _): reason
            }
        onAttempt(
            ShipAttempt(
                seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                events: batch.count, failure: failure))
        let now = self.now()
        do {
            switch outcome {
            case .delivered:
                // Another batch goes at once: its send covers this acknowledgement's transaction.
                if takingAhead != nil, !takenAhead.isEmpty {
                    unacknowledged = (batch, now)
                } else {
                    try source.acknowledge(batch, now: now)
                }
                status.update {
                    $0.delivered += batch.count
                    $0.lastDeliveryAt = now
                    $0.lastError = nil
                    $0.endpointRefusal = nil
                }
                return true
            case .retryable(let reason, let detail, let retryAfter):
                retryLater(batch, reason: reason, detail: detail, retryAfter: retryAfter, now: now)
                return false
            case .rejected(let reason, let detail, let bisectable):
                status.update {
                    $0.failures[reason, default: 0] += 1
                    $0.endpointRefusal = nil
                }
                if bisectable, batch.count > 1 {
                    let middle = batch.count / 2
                    guard await deliver(Array(batch[..<middle])) else {
                        // The endpoint stopped answering halfway: the rest waits for the retry too.
                        try source.retry(Array(batch[middle...]), at: now + policy.retry.baseSeconds, error: "bisection interrupted")
                        return false
                    }
                    return await deliver(Array(batch[middle...]))
                }
                try source.refuse(batch, reason: "\(reason.rawValue): \(detail)", now: now)
                onRefused(batch.count)
                status.update {
                    $0.refused += batch.count
                    $0.lastError = detail
                }
                logger.error(
                    "\(Source.refusalMessage)",
                    metadata: ["sink.type": "\(endpoint.type())", "ship.reason": "\(reason.rawValue)",
                               "ship.events": "\(batch.count)",
                               "\(endpoint.itemsKey)": "\(batch.map(\.logName).prefix(5).joined(separator: ","))",
                               "error": "\(detail)"])
                return true
            }
        } catch {
            // The source could not record the outcome: the items stay pending and go again.
            logger.error("cannot record a delivery outcome", metadata: ["sink.type": "\(endpoint.type())", "error": "\(error)"])
            if case .retryable = outcome { return false }
            return true
        }
    }

    /// Sends `batch` on the send thread while this one takes the batch after it.
    private mutating func send(_ batch: [Source.Item], takingAheadAt now: Double) async -> ShipOutcome {
        let (send, executor) = (self.send, sendThread.executor)
        return await withTaskGroup(of: ShipOutcome.self) { group in
            group.addTask(executorPreference: executor) { await send(batch) }
            recordAcknowledgement()
            do {
                takenAhead = try source.take(now: now, after: batch)
            } catch {
                // Nothing is lost: the next round takes what is due the usual way.
                logger.error("cannot read what is due", metadata: ["sink.type": "\(endpoint.type())", "error": "\(error)"])
            }
            guard let outcome = await group.next() else { preconditionFailure("the send is the group's one task") }
            return outcome
        }
    }

    /// Records the acknowledgement left for the next send (`unacknowledged`). Should it fail, the
    /// batch stays pending in the source and goes again: delivery is at least once.
    mutating func recordAcknowledgement() {
        guard let (batch, at) = unacknowledged else { return }
        unacknowledged = nil
        do {
            try source.acknowledge(batch, now: at)
        } catch {
            logger.error("cannot record a delivery outcome", metadata: ["sink.type": "\(endpoint.type())", "error": "\(error)"])
        }
    }

    /// A retryable failure: the batch is due again after a full-jitter backoff (at least the
    /// Retry-After, which also pauses all sending).
    private mutating func retryLater(
        _ batch: [Source.Item], reason: ShipFailureReason, detail: String, retryAfter: Double?, now: Double
    ) {
        let attempt = (batch.map(\.attempts).min() ?? 1) - 1
        let delay = policy.retry.delay(attempt: attempt, retryAfter: retryAfter, using: &random)
        if let retryAfter { pausedUntil = max(pausedUntil, now + min(retryAfter, policy.retry.capSeconds)) }
        do {
            try source.retry(batch, at: now + delay, error: "\(reason.rawValue): \(detail)")
        } catch {
            logger.error("cannot record a delivery outcome", metadata: ["sink.type": "\(endpoint.type())", "error": "\(error)"])
        }
        status.update {
            $0.failures[reason, default: 0] += 1
            $0.lastError = detail
            if reason.isEndpointRefusal { $0.endpointRefusal = String(detail.prefix(200)) }
        }
        // A refused request (a rotated token, a wrong URL) will not pass by itself.
        logger.log(
            level: reason.isEndpointRefusal ? .error : .warning,
            reason.isEndpointRefusal
                ? "\(endpoint.name) refused the request; check \(endpoint.refusalHint); will retry"
                : "delivery failed; will retry",
            metadata: ["sink.type": "\(endpoint.type())", "ship.reason": "\(reason.rawValue)",
                       "ship.events": "\(batch.count)", "retry.in_seconds": "\(Int(delay.rounded()))",
                       "error": "\(detail)"])
    }
}

/// The thread a delivery loop's sends run on while the loop takes the next batch. Made at the first
/// such send (a loop that never drains a backlog has none) and ended with the loop. A sink may
/// block its thread for the whole send (the NATS and Kafka clients wait for acknowledgements in C),
/// so it is a thread of its own, not one of Swift's shared pool.
final class SendThread: Sendable {
    let name: String
    private let thread = Mutex<EventThread?>(nil)

    init(name: String) {
        self.name = name
    }

    var executor: EventThread {
        thread.withLock { thread in
            if let thread { return thread }
            let made = EventThread(name: name)
            thread = made
            return made
        }
    }

    /// Lets the thread end once its last send is done.
    func finish() {
        thread.withLock { thread in
            thread?.finish()
            thread = nil
        }
    }
}
