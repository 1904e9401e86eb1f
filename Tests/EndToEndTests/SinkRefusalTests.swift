import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `hostmeter run` shipping to a real consumer (scripts/consumer.py) that refuses its requests as
/// an endpoint does after a token rotation: a failure of the endpoint, not a verdict on the events.
/// Nothing may be dead-lettered, `/health` must say what is wrong, and once the consumer takes
/// requests again everything arrives. Every wait has a deadline.
@Suite(.serialized, .timeLimit(.minutes(3))) struct SinkRefusalTests {
    @Test func aRotatedTokenDegradesHealthNamingTheStatusAndLosesNothing() async throws {
        let consumer = try LoopbackConsumer()
        defer { consumer.stop() }
        try await consumer.setMode(["mode": "status", "status": 401])
        let scratch = try AgentScratch()
        defer { scratch.remove() }
        try scratch.writeConfig(
            """
            sink:
              type: http
              url: \(consumer.eventsURL)
              timeout_seconds: 2
              connect_timeout_seconds: 1
            retry:
              base_seconds: 0.1
              cap_seconds: 0.5
            circuit_breaker:
              failure_threshold: 3
              open_seconds: 0.5
            """)
        let agent = try AgentChild(scratch)
        defer { agent.kill() }
        let port = try await agent.apiPort()

        var health = (ok: true, reasons: [String](), object: [String: Any]())
        let degraded = await waitUntil(within: 30) {
            health = try agentHealth(port: port)
            return health.reasons.contains { $0.contains("HTTP 401") }
        }
        #expect(degraded, "no /health reason naming HTTP 401: \(health.reasons); stderr:\n\(agent.stderr)")
        #expect(!health.ok)
        // Retried with backoff, not given up on.
        var refused: [String: Int] = [:]
        let retried = await waitUntil(within: 20) {
            refused = try await consumer.stats().by_status
            return (refused["401"] ?? 0) >= 3
        }
        #expect(retried, "\(refused)")
        let outbox = try LoopbackHTTP.get(port: port, path: "/outbox").json
        #expect(outbox["dead_letters"] as? Int == 0, "\(outbox)")
        #expect((outbox["pending_events"] as? Int ?? 0) > 0, "\(outbox)")

        // The token is fixed: the backlog is delivered and /health recovers.
        try await consumer.setMode(["mode": "ok"])
        let recovered = await waitUntil(within: 40) {
            health = try agentHealth(port: port)
            let delivered = try await consumer.stats().unique_events
            return health.ok && delivered > 0
        }
        #expect(recovered, "not recovered: \(health.reasons); stderr:\n\(agent.stderr)")
        let after = try LoopbackHTTP.get(port: port, path: "/outbox").json
        #expect(after["dead_letters"] as? Int == 0, "\(after)")

        kill(agent.pid, SIGTERM)
        #expect(await agent.waitForExit(within: 30) == .exited(0), "stderr:\n\(agent.stderr)")
    }
}
