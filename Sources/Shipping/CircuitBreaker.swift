/// Stops sending to a consumer that keeps failing, and probes it now and then.
///
/// closed → open after `failureThreshold` consecutive failures → half-open once the open time has
/// passed (one probe may go) → closed on the probe's success, or open again with the open time
/// doubled (capped at `maxOpenSeconds`) on its failure. Each open time is jittered by ±20 % (from
/// a random fraction the caller passes), so the hosts of a fleet that lost their consumer together
/// do not all probe it in the same second. Pure: time and chance are inputs.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed
        case open(until: Double)
        case halfOpen

        /// The metric value: 0 closed, 1 open, 2 half-open.
        public var gaugeValue: Int {
            switch self {
            case .closed: 0
            case .open: 1
            case .halfOpen: 2
            }
        }

        public var name: String {
            switch self {
            case .closed: "closed"
            case .open: "open"
            case .halfOpen: "half_open"
            }
        }
    }

    public let failureThreshold: Int
    public let openSeconds: Double
    public let maxOpenSeconds: Double
    public private(set) var state: State = .closed
    public private(set) var consecutiveFailures = 0
    /// How many times in a row the breaker has opened without a success in between.
    public private(set) var consecutiveOpenings = 0

    public init(failureThreshold: Int, openSeconds: Double, maxOpenSeconds: Double? = nil) {
        precondition(failureThreshold >= 1 && openSeconds > 0, "circuit breaker: bad settings")
        self.failureThreshold = failureThreshold
        self.openSeconds = openSeconds
        self.maxOpenSeconds = max(openSeconds, maxOpenSeconds ?? openSeconds * 16)
    }

    /// Whether a request may go at `now`; moves an expired open breaker to half-open.
    public mutating func allowsRequest(now: Double) -> Bool {
        switch state {
        case .closed, .halfOpen:
            return true
        case .open(let until):
            guard now >= until else { return false }
            state = .halfOpen
            return true
        }
    }

    /// When a request may next go, or nil if it may go now.
    public func blockedUntil(now: Double) -> Double? {
        if case .open(let until) = state, now < until { return until }
        return nil
    }

    /// Keeps an open breaker from waiting longer than `maxOpenSeconds` from `now`. Times are wall
    /// seconds, so after the wall clock stepped back the end of an open period is that much further
    /// away than it was meant to be; this moves it back (a step forward only shortens the wait).
    public mutating func bound(now: Double) {
        if case .open(let until) = state, until > now + maxOpenSeconds {
            state = .open(until: now + maxOpenSeconds)
        }
    }

    public mutating func recordSuccess() {
        state = .closed
        consecutiveFailures = 0
        consecutiveOpenings = 0
    }

    /// `jitter` in [0, 1) scales the open time from 0.8× to 1.2× (0.5: exactly the open time); the
    /// open time never exceeds `maxOpenSeconds`.
    public mutating func recordFailure(now: Double, jitter: Double = 0.5) {
        consecutiveFailures += 1
        switch state {
        case .halfOpen:
            open(now: now, jitter: jitter)
        case .closed where consecutiveFailures >= failureThreshold:
            open(now: now, jitter: jitter)
        case .closed, .open:
            break
        }
    }

    private mutating func open(now: Double, jitter: Double) {
        let growth = Double(1 << min(consecutiveOpenings, 30))
        let factor = 0.8 + 0.4 * min(max(jitter, 0), 1)
        state = .open(until: now + min(maxOpenSeconds, openSeconds * growth * factor))
        consecutiveOpenings += 1
    }
}
