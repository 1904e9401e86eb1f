import Foundation
import Outbox
import UsageModel

/// A temporary outbox filled with contiguous usage events of one instance.
struct FilledOutbox {
    let database: AgentDatabase
    let directory: URL
    let eventIDs: [String]
    /// The events as stored, in order.
    let events: [OutboxEvent]

    /// `org` gives event `index` its organisation (nil: none).
    /// `firstPeriodStart`: where event 0's 30-s period starts (unix seconds).
    init(
        events count: Int, instance: String = "vm-1", firstPeriodStart: Int64 = 1_763_726_400,
        org: (Int) -> String? = { _ in nil }
    ) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        database = try AgentDatabase.open(path: directory.appendingPathComponent("hostmeter.sqlite").path)
        let encoder = UsageEventEncoder()
        var events: [OutboxEvent] = []
        var ids: [String] = []
        for index in 0..<count {
            let period = Period(start: firstPeriodStart + Int64(index) * 30, end: firstPeriodStart + 30 + Int64(index) * 30)
            let event = UsageEvent(
                hostID: "host-1", instanceID: instance, userID: "u-1", orgID: org(index), period: period,
                metrics: UsageMetrics(cpuSeconds: Int64(index % 7), memoryGB: 1.5, storageGB: 20), timestamp: period.end)
            ids.append(event.eventID)
            events.append(try OutboxEvent(event, encoder: encoder))
        }
        try database.commit(MeteringCommit(events: events))
        eventIDs = ids
        self.events = events
    }
}
