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

        var random = SystemRandomNumberGenerator()
        let kills = 8
        for _ in 0..<kills {
            let agent = try AgentChild(scratch, stderr: .nullDevice)
            try await Task.sleep(for: .milliseconds(Int.random(in: 1300...2600, using: &random)))
            #expect(agent.isRunning)
            kill(agent.pid, SIGKILL)
            agent.process.waitUntilExit()
        }
        try await consumer.setMode(["mode": "ok"])
        let last = try AgentChild(scratch, stderr: .nullDevice)
        try await Task.sleep(for: .milliseconds(3000))
        #expect(await last.terminate(within: 60) == .exited(0))

        let database = try AgentDatabase.open(path: scratch.databaseFile.path)
        let decoder = JSONDecoder()
        var events: [String: UsageEvent] = [:]
        for body in try await consumer.events() {
            let event = try decoder.decode(UsageEvent.self, from: JSONSerialization.data(withJSONObject: body))
            events[event.eventID] = event
        }
        let delivered = events.count
        for pending in try database.events() {
            let event = try decoder.decode(UsageEvent.self, from: pending.payload)
            if let earlier = events[event.eventID] { #expect(earlier == event) }
            events[event.eventID] = event
        }
        let stats = try await consumer.stats()
        // A resent event must be the same event, byte for byte in meaning: the consumer counts
        // redeliveries whose body differs from the first one.
        #expect(stats.conflicts == 0, "an event was resent with different content")
        #expect(delivered > kills, "the consumer received \(delivered) events")

        // Nothing missing: from the first period to the open one, periods tile time.
        let ordered = events.values.sorted { $0.period.start < $1.period.start }
        let baseline = try #require(try database.baselines().first)
        #expect(ordered.first?.period.start == baseline.wallNanos / 1_000_000_000)
        for (earlier, later) in zip(ordered, ordered.dropFirst()) {
            #expect(later.period.start == earlier.period.end, "\(earlier.period) then \(later.period)")
        }
        #expect(try database.deadLetters().isEmpty)
        print("shipper kill test: kills=\(kills) events=\(ordered.count) delivered=\(delivered) resent_duplicates=\(stats.duplicates)")
    }
}
