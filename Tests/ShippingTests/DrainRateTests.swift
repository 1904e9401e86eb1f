import Testing

@testable import Shipping

/// The shipper's send-rate cap: bursts up to the bucket, then the rate on average.
@Suite struct DrainRateTests {
    @Test func aBurstGoesAtOnceThenTheRateHolds() {
        var rate = DrainRate(perSecond: 100, burst: 500)
        #expect(rate.wait(now: 0) == 0)
        rate.spend(500, now: 0)
        #expect(rate.wait(now: 0) == 0, "a bucket that is empty, not in debt, lets the next batch go")
        rate.spend(200, now: 0)
        #expect(rate.wait(now: 0) == 2)
        #expect(rate.wait(now: 1.5) == 0.5)
        #expect(rate.wait(now: 2) == 0)
    }

    @Test func aLongBacklogDrainsAtTheRate() {
        // 20,000 events in batches of 500 at 1,000 a second, burst 1,000: 19 s from first to last.
        var rate = DrainRate(perSecond: 1000, burst: 1000)
        var now = 0.0
        var sent = 0
        var rounds = 0
        while sent < 20_000, rounds < 10_000 {
            rounds += 1
            let wait = rate.wait(now: now)
            if wait > 0 {
                now += wait
                continue
            }
            rate.spend(500, now: now)
            sent += 500
        }
        #expect(sent == 20_000)
        #expect(abs(now - 18.5) < 1e-9, "the last batch went at \(now) s")
    }

    @Test func aQuietSpellRefillsOnlyToTheBurst() {
        var rate = DrainRate(perSecond: 10, burst: 50)
        rate.spend(50, now: 0)
        _ = rate.wait(now: 3_600)
        #expect(rate.tokens == 50)
    }

    @Test func aWallClockSteppedBackRefillsNothing() {
        var rate = DrainRate(perSecond: 10, burst: 50)
        rate.spend(80, now: 1_000)
        #expect(rate.wait(now: 1_000) == 3)
        #expect(rate.wait(now: 10) == 3, "the step back gave no tokens")
        #expect(rate.wait(now: 11) == 2)
    }
}
