import Testing

@testable import Shipping

@Suite struct CircuitBreakerTests {
    @Test func opensAfterTheThresholdOfConsecutiveFailures() {
        var breaker = CircuitBreaker(failureThreshold: 3, openSeconds: 10)
        breaker.recordFailure(now: 0)
        breaker.recordFailure(now: 1)
        #expect(breaker.state == .closed)
        breaker.recordSuccess()
        breaker.recordFailure(now: 2)
        breaker.recordFailure(now: 3)
        #expect(breaker.state == .closed, "a success resets the count")
        breaker.recordFailure(now: 4)
        #expect(breaker.state == .open(until: 14))
        #expect(breaker.state.gaugeValue == 1)
    }

    @Test func nothingGoesWhileOpenThenOneProbe() {
        var breaker = CircuitBreaker(failureThreshold: 1, openSeconds: 10)
        breaker.recordFailure(now: 100)
        let allowedEarly = breaker.allowsRequest(now: 105)
        #expect(!allowedEarly)
        #expect(breaker.blockedUntil(now: 105) == 110)
        let allowedLater = breaker.allowsRequest(now: 110)
        #expect(allowedLater)
        #expect(breaker.state == .halfOpen)
        #expect(breaker.state.gaugeValue == 2)
    }

    @Test func aSuccessfulProbeCloses() {
        var breaker = CircuitBreaker(failureThreshold: 1, openSeconds: 10)
        breaker.recordFailure(now: 0)
        let probe = breaker.allowsRequest(now: 10)
        #expect(probe)
        breaker.recordSuccess()
        #expect(breaker.state == .closed)
        #expect(breaker.state.gaugeValue == 0)
        breaker.recordFailure(now: 20)
        #expect(breaker.state == .open(until: 30), "after closing, the open time starts over")
    }

    @Test func aFailedProbeReopensForLongerUpToTheCap() {
        var breaker = CircuitBreaker(failureThreshold: 2, openSeconds: 10, maxOpenSeconds: 60)
        breaker.recordFailure(now: 0)
        breaker.recordFailure(now: 0)
        var now = 0.0
        var openTimes: [Double] = []
        for _ in 0..<6 {
            guard case .open(let until) = breaker.state else {
                Issue.record("expected open, got \(breaker.state)")
                return
            }
            openTimes.append(until - now)
            now = until
            let probe = breaker.allowsRequest(now: now)
            #expect(probe)
            breaker.recordFailure(now: now)
        }
        #expect(openTimes == [10, 20, 40, 60, 60, 60])
    }
}

@Suite struct CircuitBreakerClockTests {
    @Test(arguments: [(0.0, 8.0), (0.5, 10.0), (0.999_999_999, 12.0)])
    func eachOpenTimeIsJitteredWithinAFifth(jitter: Double, seconds: Double) {
        var breaker = CircuitBreaker(failureThreshold: 1, openSeconds: 10)
        breaker.recordFailure(now: 100, jitter: jitter)
        guard case .open(let until) = breaker.state else {
            Issue.record("not open: \(breaker.state)")
            return
        }
        #expect(abs(until - 100 - seconds) < 1e-6)
    }

    @Test func jitterNeverCarriesAnOpenTimePastItsLongest() {
        var breaker = CircuitBreaker(failureThreshold: 1, openSeconds: 10, maxOpenSeconds: 40)
        for round in 0..<6 {
            _ = breaker.allowsRequest(now: Double(round) * 1000)
            breaker.recordFailure(now: Double(round) * 1000, jitter: 0.99)
        }
        guard case .open(let until) = breaker.state else {
            Issue.record("not open: \(breaker.state)")
            return
        }
        #expect(until == 5000 + 40)
    }

    @Test func aFleetsProbesSpreadOut() {
        // 1,000 hosts lose their consumer in the same second: their probes do not come together.
        var random = SystemRandomNumberGenerator()
        var probes: [Double] = []
        for _ in 0..<1000 {
            var breaker = CircuitBreaker(failureThreshold: 1, openSeconds: 30)
            breaker.recordFailure(now: 0, jitter: Double.random(in: 0..<1, using: &random))
            if case .open(let until) = breaker.state { probes.append(until) }
        }
        #expect(probes.min()! >= 24 && probes.max()! < 36)
        let busiestSecond = Dictionary(grouping: probes) { Int($0) }.values.map(\.count).max()!
        #expect(busiestSecond < 200, "\(busiestSecond) of 1,000 probes in one second")
    }

    @Test func boundPullsAnOpenBreakerBackWithinItsLongestOpenTime() {
        var breaker = CircuitBreaker(failureThreshold: 1, openSeconds: 10, maxOpenSeconds: 40)
        breaker.recordFailure(now: 1_000)
        #expect(breaker.state == .open(until: 1_010))
        // The wall clock stepped back an hour: the breaker would wait 3,610 s.
        breaker.bound(now: -2_600)
        #expect(breaker.state == .open(until: -2_560))
        // Within the bound (or closed) nothing changes.
        breaker.bound(now: -2_590)
        #expect(breaker.state == .open(until: -2_560))
        breaker.recordSuccess()
        breaker.bound(now: 0)
        #expect(breaker.state == .closed)
    }
}
