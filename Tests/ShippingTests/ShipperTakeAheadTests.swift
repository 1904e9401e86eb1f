import EventThreads
import Foundation
import Logging
import Outbox
import Synchronization
import Testing

@testable import Shipping

/// Draining a backlog, the shipper leases the next batch while the current one is being sent, on a
/// thread of its own; the batch taken ahead goes whatever became of the one before it, and every
/// event is delivered exactly once.
@Suite struct ShipperTakeAheadTests {
    /// Answers each send with the next scripted outcome (then `.delivered`), and records what it was
    /// sent and how many events of the outbox were leased while each send was under way.
    final class ScriptedSink: Sink {
        let type = "scripted"
        let database: AgentDatabase
        let script: Mutex<[ShipOutcome]>
        let sent = Mutex<[(events: [String], delivered: Bool, leasedDuringSend: Int, thread: String)]>([])
        /// Events leased, the batch in flight with the one taken ahead, that the first two sends wait for.
        let leasedWithNext: Int

        init(database: AgentDatabase, script: [ShipOutcome], leasedWithNext: Int) {
            self.database = database
            self.leasedWithNext = leasedWithNext
            self.script = Mutex(script)
        }

        func send(_ batch: [OutboxEvent]) async -> ShipOutcome {
            // The first two sends wait (10 s at most: a loaded machine) for the loop to lease the
            // next batch while they are out (it may have done so before this send began).
            let waits = sent.withLock { $0.count < 2 }
            var leased = (try? database.stats().attemptedEvents) ?? 0
            for _ in 0..<(waits ? 2_000 : 0) where leased < leasedWithNext {
                // Blocking, as a broker sink blocks its send thread: no hop through the shared pool,
                // which the rest of a parallel test run may keep busy.
                usleep(5_000)
                leased = (try? database.stats().attemptedEvents) ?? 0
            }
            let outcome = script.withLock { $0.isEmpty ? .delivered : $0.removeFirst() }
            let thread = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            let delivered = if case .delivered = outcome { true } else { false }
            sent.withLock {
                $0.append((batch.map(\.eventID), delivered, leased, thread.trimmingCharacters(in: .whitespacesAndNewlines)))
            }
            return outcome
        }

        func shutdown() async {}
    }

    @Test func theNextBatchIsLeasedDuringTheSendAndEveryEventGoesOnce() async throws {
        let outbox = try FilledOutbox(events: 35)
        let sink = ScriptedSink(
            database: outbox.database,
            script: [.delivered, .retryable(reason: .timeout, detail: "no answer", retryAfter: nil)], leasedWithNext: 20)
        let service = ShipperService(
            database: outbox.database, sink: sink,
            settings: ShipperSettings(
                batchMaxEvents: 10, retry: RetryPolicy(baseSeconds: 0.05, capSeconds: 0.1), failureThreshold: 100,
                openSeconds: 0.1, longestWaitSeconds: 0.05, drainSeconds: 0),
            logger: ShipperIntegrationTests.quietLogger)
        // On a thread of its own, as the agent runs it (`hm-shipper`).
        let thread = EventThread(name: "hm-shipper")
        defer { thread.finish() }
        let task = Task(executorPreference: thread) { try await service.run() }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try outbox.database.stats().pendingEvents > 0 {
            try await Task.sleep(for: .milliseconds(20))
        }
        task.cancel()
        _ = try? await task.value

        #expect(try outbox.database.stats().pendingEvents == 0)
        let sends = sink.sent.withLock { $0 }
        let delivered = sends.filter(\.delivered).flatMap(\.events)
        #expect(delivered.sorted() == outbox.eventIDs.sorted(), "every event delivered once")
        #expect(delivered.count == 35)
        // Batches 1 and 2 were full: the one after each was leased while it was out (the outbox held
        // both leased, 20 events), on the send thread.
        try #require(sends.count >= 4, "\(sends.map { ($0.events.count, $0.delivered) })")
        #expect(sends[0].events == Array(outbox.eventIDs[0..<10]) && sends[0].leasedDuringSend == 20)
        #expect(sends[1].events == Array(outbox.eventIDs[10..<20]) && !sends[1].delivered && sends[1].leasedDuringSend == 20)
        #expect(sends[0].thread == "hm-ship-send")
        // The batch taken ahead of the failed one went next; then the rest and the retry (in one
        // batch or two: the retry may fall due before the rest is leased).
        #expect(sends[2].events == Array(outbox.eventIDs[20..<30]) && sends[2].delivered)
        let rest: Set<String> = Set(sends[3...].filter(\.delivered).flatMap(\.events))
        let failedAndLast: Set<String> = Set(outbox.eventIDs[10..<20]).union(outbox.eventIDs[30..<35])
        #expect(rest == failedAndLast)
    }
}
