import Foundation
import Testing

@testable import Outbox

/// A lease that excludes the batch still in flight passes over it and is otherwise any lease: never
/// an event of that batch, never one twice, and an event stored meanwhile still goes before older
/// retries.
@Suite struct LeaseExcludingTests {
    @Test func theBatchInFlightIsPassedOver() throws {
        try AgentDatabaseDeliveryTests.withDatabase { database, _ in
            let stored = try AgentDatabaseDeliveryTests.fill(database, count: 25)
            let first = try database.lease(now: 5_000, maxEvents: 10, maxBytes: 1 << 20)
            let second = try database.lease(now: 5_000, maxEvents: 10, maxBytes: 1 << 20, excluding: first.map(\.id))
            // The first batch acknowledged meanwhile, the second in flight.
            try database.acknowledge(first.map(\.id))
            let third = try database.lease(now: 5_000, maxEvents: 10, maxBytes: 1 << 20, excluding: second.map(\.id))
            #expect(first.map(\.event.eventID) == stored[0..<10].map(\.eventID))
            #expect(second.map(\.event.eventID) == stored[10..<20].map(\.eventID))
            #expect(third.map(\.event.eventID) == stored[20..<25].map(\.eventID))
            #expect((first + second + third).allSatisfy { $0.attempts == 1 })
            #expect(try database.lease(now: 5_000, maxEvents: 10, maxBytes: 1 << 20, excluding: (second + third).map(\.id)).isEmpty)
        }
    }

    @Test func anEventStoredMeanwhileGoesBeforeOlderRetries() throws {
        try AgentDatabaseDeliveryTests.withDatabase { database, _ in
            let stored = try AgentDatabaseDeliveryTests.fill(database, count: 12)
            let failed = try database.lease(now: 5_000, maxEvents: 4, maxBytes: 1 << 20)
            try database.scheduleRetry(failed.map(\.id), at: 6_000, error: "timeout")
            let fresh = try database.lease(now: 7_000, maxEvents: 4, maxBytes: 1 << 20)
            #expect(fresh.map(\.event.eventID) == stored[4..<8].map(\.eventID))
            // While `fresh` is in flight, an event is stored: it goes before the rest and the retries.
            let late = try AgentDatabaseDeliveryTests.fill(database, count: 1, from: 100)
            let next = try database.lease(now: 7_000, maxEvents: 20, maxBytes: 1 << 20, excluding: fresh.map(\.id))
            #expect(next.map(\.event.eventID) == stored[8..<12].map(\.eventID) + late.map(\.eventID) + stored[0..<4].map(\.eventID))
            #expect(next.suffix(4).allSatisfy { $0.attempts == 2 })
        }
    }
}
