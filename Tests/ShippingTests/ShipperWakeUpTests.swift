import Foundation
import Logging
import Outbox
import TestSupport
import Testing

@testable import Shipping

/// The shipper needs no poll: with nothing pending it asks the outbox nothing until a commit
/// stores events, and then it ships them at once. Real SQLite file, real file sink.
@Suite struct ShipperWakeUpTests {
    @Test func anIdleShipperAsksNothingUntilACommitWakesIt() async throws {
        let scratch = try AgentScratch(prefix: "shipper-wake")
        defer { scratch.remove() }
        let directory = scratch.directory
        do {
            let database = try AgentDatabase.open(path: directory.appendingPathComponent("agent.sqlite").path)
            let output = directory.appendingPathComponent("events.jsonl").path
            // Production's settings: no longest wait.
            let service = ShipperService(
                database: database, sink: FileSink(path: output), settings: ShipperSettings(),
                logger: ShipperIntegrationTests.quietLogger)
            let log = StatementLog()
            let task = Task { try await service.run() }
            defer { task.cancel() }
            // The first round prunes audit records and finds nothing to send: wait for its lease
            // (a loaded test run can start the task late), then watch an idle spell.
            try log.follow(database.writer)
            let firstRound = await waitUntil(within: 30) { log.all.contains { $0.contains("INDEXED BY events_due") } }
            #expect(firstRound, "the shipper's first round did not lease")
            try await Task.sleep(for: .milliseconds(200))
            log.clear()
            try await Task.sleep(for: .seconds(2.5))
            let idle = log.all.filter { $0.contains("FROM events") }
            #expect(idle.isEmpty, "an idle shipper read the outbox: \(idle)")

            let event = OutboxEvent(
                eventID: "e-1", eventType: "resource_usage", instanceID: "vm-1", periodStart: 0, periodEnd: 30,
                payload: Data(#"{"event_id":"e-1"}"#.utf8))
            let committed = ContinuousClock.now
            try database.commit(MeteringCommit(events: [event]))
            let deadline = committed + .seconds(5)
            while try database.stats().pendingEvents > 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            let took = ContinuousClock.now - committed
            #expect(try database.stats().pendingEvents == 0)
            // Without the wake-up it would sleep a day; 10 s leaves room for a loaded test run.
            #expect(took < .seconds(10), "shipped \(took) after the commit")
            #expect(try String(contentsOfFile: output, encoding: .utf8).contains("e-1"))
        }
    }
}
