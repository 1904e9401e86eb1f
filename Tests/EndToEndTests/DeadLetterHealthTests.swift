import Foundation
import Outbox
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Dead letters are usage nobody was billed for yet; they are kept, and they take room under
/// `outbox.max_bytes`. Long before they could hold metering back, `/health` must say so and
/// `/metrics` must show how much room they take. The real binary on a state directory whose
/// outbox already holds dead letters.
@Suite(.serialized, .timeLimit(.minutes(2))) struct DeadLetterHealthTests {
    @Test func deadLettersOverATenthOfTheBoundDegradeHealth() async throws {
        let scratch = try AgentScratch()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(at: scratch.stateDirectory, withIntermediateDirectories: false)
        // 150 refused events of 1 KiB: about 150 KiB, more than a tenth of the 1 MiB bound.
        let database = try AgentDatabase.open(path: scratch.stateDirectory.appendingPathComponent("hostmeter.sqlite").path)
        let padding = String(repeating: "x", count: 1000)
        var events: [OutboxEvent] = []
        for index in 0..<150 {
            let start = Int64(index) * 30
            let payload = Data(#"{"event_id":"refused-\#(index)","pad":"\#(padding)"}"#.utf8)
            events.append(
                OutboxEvent(
                    eventID: "refused-\(index)", eventType: "resource_usage", instanceID: "vm-1", periodStart: start,
                    periodEnd: start + 30, payload: payload))
        }
        try database.commit(MeteringCommit(events: events))
        let leased = try database.lease(now: 1e12, maxEvents: 1000, maxBytes: 1 << 30)
        try database.deadLetter(leased.map(\.id), reason: "http_400: HTTP 400: refused", now: 1)
        try database.writer.close()

        try scratch.writeConfig("outbox:\n  max_bytes: 1048576\n")
        let agent = try AgentChild(scratch)
        defer { agent.kill() }
        let port = try await agent.apiPort()
        var health = (ok: true, reasons: [String](), object: [String: Any]())
        let degraded = await waitUntil(within: 20) {
            health = try agentHealth(port: port)
            return health.reasons.contains { $0.contains("dead letter") }
        }
        #expect(degraded, "no /health reason about dead letters: \(health.reasons); stderr:\n\(agent.stderr)")
        #expect(!health.ok)
        let outbox = health.object["outbox"] as? [String: Any] ?? [:]
        #expect(outbox["dead_letters"] as? Int == 150, "\(outbox)")
        #expect((outbox["dead_letter_bytes"] as? Int ?? 0) > 150_000, "\(outbox)")

        let metrics = try LoopbackHTTP.get(port: port, path: "/metrics").body
        let bytes = BrokenPipeTests.value(of: "hostmeter_outbox_dead_bytes", in: metrics)
        #expect((bytes ?? 0) > 150_000, "hostmeter_outbox_dead_bytes: \(String(describing: bytes))")

        // Replayed (here: the consumer took them), the reason goes away.
        let replay = try hostmeter(
            "outbox", "replay", "--all", "--database", scratch.stateDirectory.appendingPathComponent("hostmeter.sqlite").path)
        #expect(replay.status == 0, "\(replay.stderr)")
        let cleared = await waitUntil(within: 20) {
            health = try agentHealth(port: port)
            return !health.reasons.contains { $0.contains("dead letter") }
        }
        #expect(cleared, "\(health.reasons)")

        kill(agent.pid, SIGTERM)
        #expect(await agent.waitForExit(within: 30) == .exited(0), "stderr:\n\(agent.stderr)")
    }
}
