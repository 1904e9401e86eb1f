import Foundation
import Testing

@testable import Shipping

@Suite struct RetryPolicyTests {
    @Test func ceilingDoublesUpToTheCap() {
        let policy = RetryPolicy(baseSeconds: 1, capSeconds: 300)
        #expect((0...10).map { policy.ceiling(attempt: $0) } == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300])
        #expect(policy.ceiling(attempt: 10_000) == 300)
        #expect(policy.ceiling(attempt: -3) == 1)
    }

    @Test func delaysAreFullJitterWithinTheCeiling() {
        let policy = RetryPolicy(baseSeconds: 0.5, capSeconds: 60)
        var random = SystemRandomNumberGenerator()
        for attempt in 0..<12 {
            let delays = (0..<400).map { _ in policy.delay(attempt: attempt, using: &random) }
            let ceiling = policy.ceiling(attempt: attempt)
            #expect(delays.allSatisfy { $0 >= 0 && $0 <= ceiling })
            // Full jitter spreads over the whole range: both halves are used.
            #expect(delays.contains { $0 < ceiling / 2 } && delays.contains { $0 > ceiling / 2 })
        }
    }

    @Test func retryAfterIsAFloorCappedByThePolicy() {
        let policy = RetryPolicy(baseSeconds: 1, capSeconds: 120)
        var random = SystemRandomNumberGenerator()
        for _ in 0..<100 {
            #expect(policy.delay(attempt: 0, retryAfter: 30, using: &random) == 30)
            #expect(policy.delay(attempt: 0, retryAfter: 86_400, using: &random) == 120)
        }
    }

    @Test(arguments: [
        ("7", 7.0), (" 120 ", 120.0), ("0", 0.0),
        ("Sun, 06 Nov 1994 08:49:47 GMT", 10.0),
        ("Sunday, 06-Nov-94 08:49:57 GMT", 20.0),
        ("Sun Nov  6 08:49:42 1994", 5.0),
        ("Sun, 06 Nov 1994 08:49:00 GMT", 0.0),  // in the past
    ])
    func retryAfterParsesSecondsAndHTTPDates(value: String, seconds: Double) throws {
        let now = try #require(RetryAfter.httpDate("Sun, 06 Nov 1994 08:49:37 GMT"))
        #expect(RetryAfter.seconds(value, now: now) == seconds)
    }

    @Test(arguments: ["", "soon", "-5", "1.5e3", "Mon, 32 Foo 1994 25:61:00 GMT"])
    func unreadableRetryAfterIsIgnored(value: String) {
        #expect(RetryAfter.seconds(value, now: Date()) == nil)
    }
}
