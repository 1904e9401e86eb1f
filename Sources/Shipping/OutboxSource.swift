import Logging
import Outbox

extension LeasedEvent: DeliveryItem {
    var logName: String { event.eventID }
}

/// The outbox as the shipper's delivery source: leases the oldest due events, deletes what was
/// delivered, reschedules what failed, dead-letters what the consumer refused. It also prunes the
/// audit records nothing needs any more, at its first round and every `auditPruneSeconds` after.
struct OutboxSource: DeliverySource {
    static var refusalMessage: String { "events refused by the consumer; moved to the dead letters" }

    let database: AgentDatabase
    let settings: ShipperSettings
    let logger: Logger
    /// When audit records are next pruned; the first round prunes.
    var nextPruneAt = -Double.infinity
    /// A graceful shutdown's drain sends what is pending without the pacing hold.
    var draining = false

    /// How long after its period ended an event is first offered (`ShipperSettings.holdSeconds`).
    var holdSeconds: Double { draining ? 0 : settings.holdSeconds }

    mutating func prepare(now: Double) {
        guard now >= nextPruneAt else { return }
        pruneAuditRecords(now: now)
        nextPruneAt = now + settings.auditPruneSeconds
    }

    func take(now: Double) throws -> [LeasedEvent] {
        try database.lease(
            now: now, maxEvents: settings.batchMaxEvents, maxBytes: settings.batchMaxBytes, holdSeconds: holdSeconds)
    }

    /// A full batch (by count, or nine tenths of the bytes) leaves more behind it as a rule: a
    /// backlog's drain. The batch of a quiet period is not full, and nothing is taken ahead.
    func takesAhead(after batch: [LeasedEvent]) -> Bool {
        batch.count >= settings.batchMaxEvents
            || batch.reduce(0) { $0 + $1.event.payload.count } >= settings.batchMaxBytes / 10 * 9
    }

    /// A lease that passes over the batch in flight (`AgentDatabase.lease(excluding:)`): its events
    /// stay due until their outcome is recorded.
    func take(now: Double, after inFlight: [LeasedEvent]) throws -> [LeasedEvent] {
        try database.lease(
            now: now, maxEvents: settings.batchMaxEvents, maxBytes: settings.batchMaxBytes, holdSeconds: holdSeconds,
            excluding: inFlight.map(\.id))
    }

    /// The next retry, never-offered event (due at 0) or end of a pacing hold, or the next pruning.
    func nextWorkAt(now: Double) throws -> Double? {
        let due = try database.nextLeaseAt(now: now, holdSeconds: holdSeconds)
        return min(due ?? .infinity, nextPruneAt)
    }

    mutating func startDrain() {
        draining = true
    }

    func acknowledge(_ batch: [LeasedEvent], now: Double) throws {
        try database.acknowledge(batch.map(\.id))
    }

    func retry(_ batch: [LeasedEvent], at time: Double, error: String) throws {
        try database.scheduleRetry(batch.map(\.id), at: time, error: error)
    }

    func refuse(_ batch: [LeasedEvent], reason: String, now: Double) throws {
        try database.deadLetter(batch.map(\.id), reason: reason, now: now)
    }

    /// Retries are stored wall times: one beyond the cap was scheduled before the clock stepped
    /// back (while the agent ran or while it was down).
    mutating func boundWaits(now: Double, retryCap: Double) throws -> Int {
        nextPruneAt = min(nextPruneAt, now + settings.auditPruneSeconds)
        return try database.bringRetriesForward(notAfter: now + retryCap)
    }

    /// Removes gaps and baselines older than the retention that no undelivered usage needs. A
    /// failure is logged and tried again at the next pruning: nothing depends on it but room.
    func pruneAuditRecords(now: Double) {
        do {
            let pruned = try database.pruneAuditRecords(
                recordedBefore: Int64((now - settings.auditRetentionSeconds).rounded(.down)))
            if pruned > 0 { logger.info("audit records pruned", metadata: ["audit.pruned": "\(pruned)"]) }
        } catch {
            logger.error("cannot prune audit records", metadata: ["error": "\(error)"])
        }
    }
}
