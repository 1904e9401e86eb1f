/// Caps how fast a delivery loop sends: a token bucket in items per second. Pure: time is an input.
///
/// A consumer coming back after an outage would otherwise get every host's backlog at once, each
/// as fast as it can send. Sending is allowed while the bucket is not in debt; a batch takes as
/// many tokens as it has items (going into debt for a large one), and the bucket refills at
/// `perSecond` up to `burst`. So a period's events go at once (the burst holds them) while a
/// backlog drains at `perSecond` on average. A wall clock that steps back refills nothing; one
/// that steps forward refills at most to `burst`.
public struct DrainRate: Sendable, Equatable {
    public let perSecond: Double
    public let burst: Double
    public private(set) var tokens: Double
    private var updatedAt: Double?

    public init(perSecond: Double, burst: Double) {
        precondition(perSecond > 0 && burst >= 1, "drain rate: bad settings")
        self.perSecond = perSecond
        self.burst = burst
        tokens = burst
    }

    /// Seconds to wait at `now` before the next batch may go; 0 when it may go now.
    public mutating func wait(now: Double) -> Double {
        refill(now: now)
        return tokens >= 0 ? 0 : -tokens / perSecond
    }

    /// Records a request of `count` items sent at `now`.
    public mutating func spend(_ count: Int, now: Double) {
        refill(now: now)
        tokens -= Double(count)
    }

    private mutating func refill(now: Double) {
        if let updatedAt { tokens = min(burst, tokens + max(0, now - updatedAt) * perSecond) }
        updatedAt = now
    }
}
