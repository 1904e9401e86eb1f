import ServiceLifecycle
import Synchronization

/// How long a broker sink keeps waiting for its acknowledgements (PubAcks, delivery reports): until
/// its own deadline, while its task is not cancelled, and once a graceful shutdown has begun at most
/// `shutdownSeconds` more. A stop during a broker outage then takes about the shipper's drain time,
/// not a whole delivery timeout per batch; the events not acknowledged stay in the outbox.
struct AcknowledgementWait {
    let deadline: ContinuousClock.Instant
    let shutdownSeconds: Double
    /// The sink's: when its waits first saw the shutdown, so that the drain's later batches do not
    /// each wait as long again.
    let shutdown: ShutdownWatch

    /// The most a wait goes on once a graceful shutdown began: the shipper's drain time.
    static let defaultShutdownSeconds = 10.0

    init(seconds: Double, shutdown: ShutdownWatch, shutdownSeconds: Double = Self.defaultShutdownSeconds) {
        deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        self.shutdown = shutdown
        self.shutdownSeconds = shutdownSeconds
    }

    /// Whether to wait on; checked between waits of at most a second.
    func goesOn() -> Bool {
        let now = ContinuousClock.now
        guard !Task.isCancelled, now < deadline else { return false }
        if Task.isShuttingDownGracefully, now - shutdown.seen(at: now) >= .milliseconds(Int64(shutdownSeconds * 1000)) {
            return false
        }
        return true
    }

    /// Milliseconds left before the deadline, at least 1.
    var millisecondsLeft: Int64 {
        let left = ContinuousClock.now.duration(to: deadline)
        return max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
    }
}

/// When a sink's waits first saw a graceful shutdown.
final class ShutdownWatch: Sendable {
    private let seenAt = Mutex<ContinuousClock.Instant?>(nil)

    /// The first time this was asked, `now` if this is it.
    func seen(at now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        seenAt.withLock { seenAt in
            let first = seenAt ?? now
            seenAt = first
            return first
        }
    }
}
