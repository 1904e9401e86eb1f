import Foundation
import Testing

@testable import Outbox

/// A lease `after` the last event of a batch still in flight goes on in due order past it: never
/// an event of that batch, never one twice, whatever mix of new and retried events waits.
@Suite struct LeaseAfterTests {
    @Test func theBatchInFlightIsPassedOver() throws {
        try AgentDatabaseDeliveryTests.withDatabase { database, _ in
            let stored = try AgentDatabaseDeliveryTests.fill(database, count: 25)
            let first = try database.lease(now: 5_000, maxEvents: 10, maxBytes: 1 << 20)
            let second = try database.lease(now: 5_000, maxEvents: 10, maxBytes: 1 << 20, after: first.last)
            let third = try database.lease(now: 5_000, maxEvents: 10, maxBytes: 1 << 20, after: second.last)
            #expect(first.map(\.event.eventID) == stored[0..<10].map(\.eventID))
            #expect(second.map(\.event.eventID) == stored[10..<20].map(\.eventID))
            #expect(third.map(\.event.eventID) == stored[20..<25].map(\.eventID))
            #expect(try database.lease(now: 5_000, maxEvents: 10, maxBytes: 1 << 20, after: third.last).isEmpty)
            #expect((first + second + third).allSatisfy { $0.attempts == 1 && $0.dueAt == 0 })
        }
    }

    @Test func retriedAndNewEventsKeepTheirPlaces() throws {
        try AgentDatabaseDeliveryTests.withDatabase { database, _ in
            let stored = try AgentDatabaseDeliveryTests.fill(database, count: 12)
            let failed = try database.lease(now: 5_000, maxEvents: 4, maxBytes: 1 << 20)
            try database.scheduleRetry(failed.map(\.id), at: 6_000, error: "timeout")
            // Due again: the four retried events come after every never-offered one.
            let fresh = try database.lease(now: 7_000, maxEvents: 8, maxBytes: 1 << 20)
            #expect(fresh.map(\.event.eventID) == stored[4..<12].map(\.eventID))
            let retried = try database.lease(now: 7_000, maxEvents: 8, maxBytes: 1 << 20, after: fresh.last)
            #expect(retried.map(\.event.eventID) == stored[0..<4].map(\.eventID))
            #expect(retried.allSatisfy { $0.attempts == 2 && $0.dueAt == 6_000 })
            // An event stored while the retries are in flight sorts before them: the next lease
            // without `after` has it, one after the retries does not.
            try database.acknowledge(fresh.map(\.id))
            let late = try AgentDatabaseDeliveryTests.fill(database, count: 1, from: 100)
            #expect(try database.lease(now: 7_000, maxEvents: 8, maxBytes: 1 << 20, after: retried.last).isEmpty)
            #expect(try database.lease(now: 7_000, maxEvents: 8, maxBytes: 1 << 20).map(\.event.eventID).first == late[0].eventID)
        }
    }
}
