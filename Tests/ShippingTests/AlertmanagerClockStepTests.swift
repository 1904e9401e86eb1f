import EventThreads
import Foundation
import Synchronization
import Testing
import TestSupport
import UsageModel

@testable import Shipping

/// The notifier's resend times are wall times, so a wall clock stepped back must not hold the
/// resends for the size of the step: Alertmanager ends an alert whose endsAt passed (4 resends,
/// 2 minutes with 30 s periods) even while it still fires. A real loopback endpoint answers 200.
@Suite(.serialized) struct AlertmanagerClockStepTests {
    /// The wall clock as the notifier reads it: the real one, moved by hand.
    final class SteppedClock: Sendable {
        private let offset = Mutex(0.0)
        var now: Double { Date().timeIntervalSince1970 + offset.withLock { $0 } }
        func step(by seconds: Double) { offset.withLock { $0 += seconds } }
    }

    /// A loaded test run can hold a request up for seconds (the client shares NIO's event loops
    /// with every other test): generous timeouts, and a breaker that opens for a second, not the
    /// default 30 s that would outlast the test's windows. The clock step is what is under test.
    static func settings(port: Int) -> AlertmanagerSettings {
        AlertmanagerSettings(
            url: "http://127.0.0.1:\(port)", resendSeconds: 1, validitySeconds: 60,
            retry: RetryPolicy(baseSeconds: 0.05, capSeconds: 0.4), openSeconds: 1,
            connectTimeoutSeconds: 5, requestTimeoutSeconds: 10)
    }

    /// Whether `responder` answered at least `count` requests within `seconds` (polled every 50 ms).
    static func requests(_ responder: FixedResponder, atLeast count: Int, within seconds: Double) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        for _ in 0..<Int(seconds * 20) {
            if responder.requests >= count { return true }
            guard Date() < deadline else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return responder.requests >= count
    }

    /// The running notifier: resent every second before the step, and every second of the new
    /// clock after it. Before the shared loop's clock-step bounds, the next resend waited until
    /// the old clock's time came round again, an hour later.
    @Test func aClockSteppedBackAnHourKeepsResendingOnCadence() async throws {
        let responder = try FixedResponder(status: 200, body: Data())
        defer { responder.stop() }
        let clock = SteppedClock()
        let notifier = AlertmanagerNotifier(
            settings: Self.settings(port: responder.port), logger: AlertmanagerTests.quietLogger, now: { clock.now })
        let (period, now) = AlertmanagerTests.recentPeriod()
        notifier.apply([AlertmanagerTests.event(.firing, rule: "stepped", period: period, timestamp: now)])
        // The loop runs on a thread of its own: the test runner's cooperative pool (2 threads here)
        // is shared with every test, and tests that block on child processes have held it for more
        // than 30 s in a loaded run (the first request answered, its answer never processed). In
        // the agent the notifier runs on NIO's event loops (`ProcessExecutors`).
        let thread = EventThread(name: "hm-test-alerts")
        defer { thread.finish() }
        let running = Task(executorPreference: thread) { try await notifier.run() }
        defer { running.cancel() }

        // Windows of 60 s, left as soon as the count is reached: the sleeps between resends still
        // pass through the pool; without the bounds the resend after the step would wait an hour.
        #expect(
            try await Self.requests(responder, atLeast: 2, within: 60),
            "not resent before the step: \(responder.requests) requests, \(notifier.snapshot)")
        clock.step(by: -3600)
        let before = responder.requests
        #expect(
            try await Self.requests(responder, atLeast: before + 3, within: 60),
            "\(responder.requests - before) resends in 60 s after the clock stepped back: \(notifier.snapshot)")
        #expect(notifier.snapshot.failures.isEmpty, "\(notifier.snapshot.failures)")
        #expect(notifier.snapshot.activeAlerts == 1)
        running.cancel()
        _ = try? await running.value
    }

    /// Round by round with a clock the test sets: the resend after the step comes one resend
    /// interval of the new clock later; a step forward sends at once.
    @Test func eachRoundBoundsTheResendAfterAStep() async throws {
        let responder = try FixedResponder(status: 200, body: Data())
        defer { responder.stop() }
        let start = Date().timeIntervalSince1970
        let clock = ManualClock(start)
        let notifier = AlertmanagerNotifier(
            settings: Self.settings(port: responder.port), logger: AlertmanagerTests.quietLogger, now: { clock.now })
        let (period, now) = AlertmanagerTests.recentPeriod()
        notifier.apply([AlertmanagerTests.event(.firing, rule: "stepped", period: period, timestamp: now)])
        var loop = notifier.makeLoop()

        let first = await loop.step()
        #expect(first == 0 && responder.requests == 1)
        let early = await loop.step()
        #expect(early > 0 && responder.requests == 1, "resent before its time")
        clock.now = start + 1
        _ = await loop.step()
        #expect(responder.requests == 2)

        clock.now = start + 1 - 3600
        let afterStep = await loop.step()
        #expect(afterStep > 0 && responder.requests == 2, "sent at once after the step: not on cadence")
        clock.now += 1
        _ = await loop.step()
        #expect(responder.requests == 3, "the resend waits for the old clock")

        clock.now += 3600
        _ = await loop.step()
        #expect(responder.requests == 4, "a step forward must not skip a resend")
        await notifier.shutdown()
    }
}
