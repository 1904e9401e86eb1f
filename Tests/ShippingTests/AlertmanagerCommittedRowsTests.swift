import Foundation
import Outbox
import Testing
import TestSupport
import UsageModel

@testable import Shipping

/// The notifier learns of threshold events from the outbox rows each metering commit stores, not
/// from the sampler: real SQLite, the notifier following the database.
@Suite struct AlertmanagerCommittedRowsTests {
    static func row(_ event: ThresholdEvent) throws -> OutboxEvent {
        OutboxEvent(
            eventID: event.eventID, eventType: ThresholdEvent.eventType, instanceID: event.instanceID,
            periodStart: event.period.start, periodEnd: event.period.end, payload: try ThresholdEventEncoder().encode(event))
    }

    @Test func committedThresholdEventsReachTheNotifierEvenWhenDeliveredAtOnce() async throws {
        let database = try AgentDatabase.inMemory()
        let clock = ManualClock(1_763_726_500)
        let notifier = AlertmanagerNotifier(
            settings: AlertmanagerSettings(url: "http://127.0.0.1:9"), logger: AlertmanagerTests.quietLogger,
            now: { clock.now })
        notifier.follow(database)
        let period = Period(start: 1_763_726_400, end: 1_763_726_430)
        let firing = AlertmanagerTests.event(.firing, rule: "disk-full", period: period, timestamp: 1_763_726_431)
        let usage = OutboxEvent(
            eventID: "usage-1", eventType: UsageEvent.eventType, instanceID: "vm-42", periodStart: period.start,
            periodEnd: period.end, payload: Data("{}".utf8))

        try database.commit(MeteringCommit(events: [usage, try Self.row(firing)]), now: 1_763_726_431)
        #expect(notifier.pendingAlerts().map { $0.labels["alertname"] } == ["disk-full"])

        // The shipper delivers and deletes both rows at once: the alert stays active.
        let leased = try database.lease(now: 1_763_726_432, maxEvents: 10, maxBytes: 1 << 20)
        try database.acknowledge(leased.map(\.id))
        #expect(notifier.snapshot.activeAlerts == 1)

        // A commit that rolls back (the same event twice) tells the notifier nothing.
        let resolved = AlertmanagerTests.event(
            .resolved, rule: "disk-full", period: Period(start: period.end, end: period.end + 30), timestamp: 1_763_726_461)
        #expect(throws: OutboxError.self) {
            try database.commit(MeteringCommit(events: [try Self.row(resolved), try Self.row(resolved)]), now: 1_763_726_461)
        }
        #expect(notifier.snapshot.activeAlerts == 1 && notifier.snapshot.pendingResolves == 0)

        try database.commit(MeteringCommit(events: [try Self.row(resolved)]), now: 1_763_726_461)
        let pending = notifier.pendingAlerts()
        #expect(pending.count == 1 && pending.first?.endsAt == Date(timeIntervalSince1970: 1_763_726_461))
        #expect(notifier.snapshot.activeAlerts == 0 && notifier.snapshot.pendingResolves == 1)

        // A dead letter replayed is no new event.
        try database.deadLetter(try database.lease(now: 1_763_726_462, maxEvents: 10, maxBytes: 1 << 20).map(\.id), reason: "test", now: 1)
        try database.replay(eventIDs: nil)
        #expect(notifier.snapshot.pendingResolves == 1 && notifier.snapshot.activeAlerts == 0)
        await notifier.shutdown()
    }
}
