/// Stops sending to a consumer that keeps failing, and probes it now and then.
///
/// closed → open after `failureThreshold` consecutive failures → half-open once the open time has
/// passed (one probe may go) → closed on the probe's success, or open again with the open time
/// doubled (capped at `maxOpenSeconds`) on its failure. Pure: time is an input.
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

    public mutating func recordFailure(now: Double) {
        consecutiveFailures += 1
        switch state {
        case .halfOpen:
            open(now: now)
        case .closed where consecutiveFailures >= failureThreshold:
            open(now: now)
        case .closed, .open:
            break
        }
    }

    private mutating func open(now: Double) {
        let growth = Double(1 << min(consecutiveOpenings, 30))
        state = .open(until: now + min(maxOpenSeconds, openSeconds * growth))
        consecutiveOpenings += 1
    }
}
