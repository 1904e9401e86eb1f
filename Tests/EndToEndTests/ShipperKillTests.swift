import Foundation
import Outbox
import TestSupport
import Testing
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// kill -9 of a real `hostmeter run` while it ships to a slow loopback consumer, so kills land
/// mid-batch: afterwards the consumer's events and the outbox's pending ones, together, tile time
/// with nothing missing, and every resent event is the same event.
@Suite(.serialized) struct ShipperKillTests {
    @Test func killNineMidBatchLosesNothing() async throws {
        let consumer = try LoopbackConsumer()
        try await consumer.setMode(["mode": "slow", "seconds": 0.4])
        let scratch = try AgentScratch(prefix: "shipper-kill")
        defer { scratch.remove() }
        try scratch.writeConfig(
            hostID: "ship-kill", logLevel: "error",
            """
            sink:
              type: http
              url: \(consumer.eventsURL)
              batch_max_events: 2
              timeout_seconds: 5
            retry:
              base_seconds: 0.1
              cap_seconds: 1
            """)

        let kills = 8
        try await killRepeatedly(scratch, kills: kills)
        try await consumer.setMode(["mode": "ok"])
        try await runToAGracefulStop(scratch)

        let database = try AgentDatabase.open(path: scratch.databaseFile.path)
        var usage = DeliveredUsage()
        for body in try await consumer.events() {
            _ = try usage.receive(try JSONSerialization.data(withJSONObject: body))
        }
        try usage.addPending(database)
        let stats = try await consumer.stats()
        // A resent event must be the same event, byte for byte in meaning: the consumer counts
        // redeliveries whose body differs from the first one.
        #expect(stats.conflicts == 0, "an event was resent with different content")
        #expect(usage.delivered > kills, "the consumer received \(usage.delivered) events")
        let count = try usage.expectTiling(database)
        print("shipper kill test: kills=\(kills) events=\(count) delivered=\(usage.delivered) resent_duplicates=\(stats.duplicates)")
    }
}
