import Foundation
import Outbox
import Testing
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// kill -9 of a real `hostmeter run` while it ships to a slow loopback consumer, so kills land
/// mid-batch: afterwards the consumer's events and the outbox's pending ones, together, tile time
/// with nothing missing, and every resent event is the same event.
@Suite(.serialized) struct ShipperKillTests {
    var hostmeter: URL {
        if let override = ProcessInfo.processInfo.environment["TEST_HOSTMETER_BIN"] { return URL(fileURLWithPath: override) }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("hostmeter")
    }

    @Test func killNineMidBatchLosesNothing() async throws {
        let consumer = try LoopbackConsumer()
        try await consumer.setMode(["mode": "slow", "seconds": 0.4])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("shipper-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("hostmeter.yaml")
        try """
            host_id: ship-kill
            interval_seconds: 1
            state_dir: \(directory.path)
            api:
              listen: 127.0.0.1:0
            sink:
              type: http
              url: \(consumer.eventsURL)
              batch_max_events: 2
              timeout_seconds: 5
            retry:
              base_seconds: 0.1
              cap_seconds: 1
            log:
              level: error
            """.write(to: config, atomically: true, encoding: .utf8)

        var random = SystemRandomNumberGenerator()
        let kills = 8
        for _ in 0..<kills {
            let agent = try start(config: config)
            try await Task.sleep(for: .milliseconds(Int.random(in: 1300...2600, using: &random)))
            #expect(agent.isRunning)
            kill(agent.processIdentifier, SIGKILL)
            agent.waitUntilExit()
        }
        try await consumer.setMode(["mode": "ok"])
        let last = try start(config: config)
        try await Task.sleep(for: .milliseconds(3000))
        last.terminate()
        last.waitUntilExit()
        #expect(last.terminationStatus == 0)

        let database = try AgentDatabase.open(path: directory.appendingPathComponent("hostmeter.sqlite").path)
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

    private func start(config: URL) throws -> Process {
        let process = Process()
        process.executableURL = hostmeter
        process.arguments = ["run", "--config", config.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }
}
