import Foundation
import Logging
import Outbox
import Synchronization
import TestSupport
import Testing

@testable import Shipping

/// The shipper's waits are wall times (stored retry times outlive the process), so a wall clock
/// stepped back must not stretch them by the size of the step. Found by the chaos suite: after its
/// clock steps the largest delivery delay after a recovery was the step plus the breaker's open time.
@Suite struct ShipperClockStepTests {
    /// A wall clock the test sets by hand.
    final class ManualClock: Sendable {
        private let seconds: Mutex<Double>
        init(_ start: Double) { seconds = Mutex(start) }
        var now: Double { seconds.withLock { $0 } }
        func set(_ value: Double) { seconds.withLock { $0 = value } }
    }

    static let settings = ShipperSettings(
        batchMaxEvents: 50, retry: RetryPolicy(baseSeconds: 0.05, capSeconds: 0.4), failureThreshold: 1,
        openSeconds: 0.5, longestWaitSeconds: 0.05, drainSeconds: 0)

    @Test func aClockSteppedBackAnHourDelaysNothingByAnHour() async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 20)
        let start = Date().timeIntervalSince1970
        let clock = ManualClock(start)
        let sink = try HTTPSink(
            settings: HTTPSink.Settings(
                url: consumer.eventsURL, format: .json, hostID: "host-1", token: nil, headers: [],
                connectTimeoutSeconds: 1, requestTimeoutSeconds: 5))
        let service = ShipperService(
            database: outbox.database, sink: sink, settings: Self.settings, logger: ShipperIntegrationTests.quietLogger,
            now: { clock.now })
        var shipper = Shipper(service: service)

        // One 503: the breaker (threshold 1) opens until start + 0.5 and the batch is retried at
        // most 0.4 s later.
        try await consumer.setMode(["mode": "status", "status": 503, "count": 1])
        _ = await shipper.step()
        #expect(try await consumer.stats().by_status["503", default: 0] == 1)
        #expect(shipper.breaker.blockedUntil(now: start) != nil)
        #expect(try outbox.database.stats().pendingEvents == 20)

        // The wall clock steps back an hour. Every wait is bounded again from the new now: the
        // breaker by its longest open time (16 × 0.5 s), the retries by the cap.
        let back = start - 3600
        clock.set(back)
        _ = await shipper.step()
        let until = shipper.breaker.blockedUntil(now: back)
        #expect(until.map { $0 <= back + 8 } ?? true, "breaker open until \(until.map { $0 - back } ?? 0) s from now")
        #expect(shipper.pausedUntil <= back + 0.4)

        // 8 s of the new clock later everything is due and goes: without the bounds the breaker
        // and the retries would wait until the old clock's times, an hour away.
        clock.set(back + 8.5)
        var rounds = 0
        while try outbox.database.stats().pendingEvents > 0, rounds < 20 {
            _ = await shipper.step()
            rounds += 1
        }
        #expect(try outbox.database.stats().pendingEvents == 0)
        #expect(try await consumer.stats().unique_events == 20)
        await sink.shutdown()
    }
}
