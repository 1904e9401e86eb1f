import Foundation
import Testing
import TestSupport
import UsageModel

@testable import Shipping

/// The alert book's schedule, pure: time is an input.
@Suite struct AlertBookTests {
    static let settings = AlertmanagerSettings(url: "http://127.0.0.1:9", resendSeconds: 30, validitySeconds: 120)
    static let period = Period(start: 1_000, end: 1_030)

    static func firing(_ rule: String) -> ThresholdEvent {
        AlertmanagerTests.event(.firing, rule: rule, period: period, timestamp: 1_031)
    }

    @Test func aChangeIsDueAtOnceAndAnAnswerWaitsOneResend() {
        var book = AlertBook(settings: Self.settings)
        #expect(book.take(now: 2_000).isEmpty)
        _ = book.apply([Self.firing("a")], now: 2_000)
        let batch = book.take(now: 2_000)
        #expect(batch.map(\.alert.endsAt) == [Date(timeIntervalSince1970: 2_120)])
        book.acknowledge(batch, now: 2_001)
        #expect(book.take(now: 2_030).isEmpty)
        #expect(book.take(now: 2_031).count == 1)
    }

    @Test func aChangeWhileARequestIsOutIsSentRightAfterIt() {
        var book = AlertBook(settings: Self.settings)
        _ = book.apply([Self.firing("a")], now: 2_000)
        let batch = book.take(now: 2_000)
        _ = book.apply([Self.firing("b")], now: 2_000.5)
        book.acknowledge(batch, now: 2_001)
        #expect(book.take(now: 2_001).map(\.logName) == ["a", "b"])
    }

    @Test func aFailureBacksOffAndCountsTheAttempt() {
        var book = AlertBook(settings: Self.settings)
        _ = book.apply([Self.firing("a")], now: 2_000)
        let failed = book.take(now: 2_000)
        book.retry(failed, at: 2_004, error: "connect")
        #expect(book.take(now: 2_003).isEmpty)
        // A new event during the backoff waits for its end.
        _ = book.apply([Self.firing("b")], now: 2_003)
        #expect(book.take(now: 2_003.5).isEmpty)
        #expect(book.take(now: 2_004).map(\.attempts) == [2, 2])
    }

    @Test func aClockSteppedBackBoundsTheResendAndTheBackoff() {
        var book = AlertBook(settings: Self.settings)
        _ = book.apply([Self.firing("a")], now: 5_000)
        let sent = book.take(now: 5_000)
        book.acknowledge(sent, now: 5_000)
        #expect(book.boundWaits(now: 5_001, retryCap: 10) == 0, "no step: nothing moves")
        #expect(book.boundWaits(now: 1_400, retryCap: 10) == 1)
        #expect(book.take(now: 1_429).isEmpty)
        let failed = book.take(now: 1_430)
        book.retry(failed, at: 1_440, error: "timeout")
        #expect(book.boundWaits(now: 400, retryCap: 10) == 1)
        #expect(book.take(now: 410).count == 1)
    }

    @Test func aDrainOffersThePendingResolvesOnce() {
        var book = AlertBook(settings: Self.settings, firing: [Self.firing("a"), Self.firing("b")])
        _ = book.apply(
            [AlertmanagerTests.event(.resolved, rule: "b", period: Period(start: 1_030, end: 1_060), timestamp: 1_061)],
            now: 2_000)
        book.startDrain()
        let batch = book.take(now: 2_000)
        #expect(batch.map(\.logName) == ["b"] && batch.first?.alert.endsAt == Date(timeIntervalSince1970: 1_061))
        #expect(book.take(now: 2_000).isEmpty)
    }
}
