import Foundation
import Outbox
import TestSupport
import Testing
import UsageModel

/// `hostmeter outbox stats|dead|replay` on a real database file.
@Suite struct OutboxCommandTests {
    @Test func statsDeadAndReplay() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("hostmeter.sqlite").path
        let database = try AgentDatabase.open(path: path)
        let events = try (0..<4).map { index -> OutboxEvent in
            let period = Period(start: 1_000 + Int64(index) * 30, end: 1_030 + Int64(index) * 30)
            let event = UsageEvent(
                hostID: "h", instanceID: "vm-1", userID: "u", orgID: nil, period: period, metrics: UsageMetrics(),
                timestamp: period.end)
            return try OutboxEvent(event, encoder: UsageEventEncoder())
        }
        try database.commit(MeteringCommit(events: events))
        let leased = try database.lease(now: 0, maxEvents: 2, maxBytes: 1 << 20)
        try database.deadLetter(leased.map(\.id), reason: "http_400: HTTP 400: bad event", now: 5)

        let stats = try jsonObject(try hostmeter("outbox", "stats", "--database", path).stdout)
        #expect(stats["pending_events"] as? Int == 2)
        #expect(stats["dead_letters"] as? Int == 2)

        let dead = try hostmeter("outbox", "dead", "--database", path)
        #expect(dead.status == 0)
        let lines = String(decoding: dead.stdout, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { $0.contains("bad event") && $0.contains("\"attempts\":1") })

        let one = try hostmeter("outbox", "replay", "--database", path, events[0].eventID)
        #expect(one.status == 0)
        #expect(String(decoding: one.stdout, as: UTF8.self).contains("replayed 1 event"))
        let unknown = try hostmeter("outbox", "replay", "--database", path, "no-such-id")
        #expect(unknown.status == 1)
        let all = try hostmeter("outbox", "replay", "--database", path, "--all")
        #expect(String(decoding: all.stdout, as: UTF8.self).contains("replayed 1 event"))
        #expect(try database.stats().pendingEvents == 4)
        #expect(try database.deadLetters().isEmpty)

        #expect(try hostmeter("outbox", "replay", "--database", path).status == 2, "needs --all or ids")
        #expect(try hostmeter("outbox", "stats", "--database", directory.appendingPathComponent("missing.sqlite").path).status == 1)
    }
}
