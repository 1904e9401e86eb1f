import Foundation
import Testing

@testable import Outbox

/// Fleet pacing's hold: an event is first offered `holdSeconds` after its period ended, and the
/// shipper is told when the next one is released, so it sleeps until then instead of polling.
@Suite struct PacingHoldTests {
    @Test func anEventIsOfferedOnlyOnceItsHoldIsOver() throws {
        try AgentDatabaseDeliveryTests.withDatabase { database, _ in
            // e1, e2, e3 end at 60, 90 and 120; at 125 with a hold of 15, e3 is still held.
            _ = try AgentDatabaseDeliveryTests.fill(database, count: 3)
            let first = try database.lease(now: 125, maxEvents: 10, maxBytes: 1 << 20, holdSeconds: 15)
            #expect(first.map(\.event.eventID) == ["e1", "e2"])
            try database.acknowledge(first.map(\.id))
            #expect(try database.nextLeaseAt(now: 125, holdSeconds: 15) == 135, "e3 is released at 120 + 15")
            #expect(try database.lease(now: 134.9, maxEvents: 10, maxBytes: 1 << 20, holdSeconds: 15).isEmpty)
            #expect(try database.lease(now: 135, maxEvents: 10, maxBytes: 1 << 20, holdSeconds: 15).map(\.event.eventID) == ["e3"])
        }
    }

    @Test func withoutAHoldEverythingDueGoes() throws {
        try AgentDatabaseDeliveryTests.withDatabase { database, _ in
            _ = try AgentDatabaseDeliveryTests.fill(database, count: 3)
            #expect(try database.lease(now: 121, maxEvents: 10, maxBytes: 1 << 20).count == 3)
        }
    }

    @Test func aRetryComesBeforeALaterRelease() throws {
        try AgentDatabaseDeliveryTests.withDatabase { database, _ in
            _ = try AgentDatabaseDeliveryTests.fill(database, count: 3)
            let first = try database.lease(now: 125, maxEvents: 2, maxBytes: 1 << 20, holdSeconds: 15)
            #expect(first.map(\.event.eventID) == ["e1", "e2"])
            try database.scheduleRetry(first.map(\.id), at: 130, error: "HTTP 503")
            // e3 (ends 120) is released at 135; the retry is due at 130.
            #expect(try database.nextLeaseAt(now: 125, holdSeconds: 15) == 130)
            #expect(try database.lease(now: 130, maxEvents: 10, maxBytes: 1 << 20, holdSeconds: 15).map(\.event.eventID) == ["e1", "e2"])
            #expect(try database.nextLeaseAt(now: 125, holdSeconds: 0) == 0, "without a hold, the never-offered e3 is due")
        }
    }

    @Test func aWallClockSteppedBackHoldsNothingForTheLengthOfTheStep() throws {
        try AgentDatabaseDeliveryTests.withDatabase { database, _ in
            // e1 … e3 end at 60, 90 and 120; the clock now reads 50, before all of them.
            _ = try AgentDatabaseDeliveryTests.fill(database, count: 3)
            let leased = try database.lease(now: 50, maxEvents: 10, maxBytes: 1 << 20, holdSeconds: 15)
            #expect(leased.map(\.event.eventID) == ["e1", "e2", "e3"])
        }
    }

    @Test func nothingPendingMeansNoWork() throws {
        try AgentDatabaseDeliveryTests.withDatabase { database, _ in
            let next = try database.nextLeaseAt(now: 100, holdSeconds: 15)
            #expect(next == nil)
        }
    }
}
