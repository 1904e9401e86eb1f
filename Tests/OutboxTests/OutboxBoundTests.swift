import Foundation
import Outbox
import Testing
import UsageModel

/// The outbox's size bound (`outbox.max_bytes`): near it, old never-attempted usage events of one
/// instance are merged into longer periods with every total kept exactly; events that may have
/// reached a consumer are never touched; and when nothing can be merged the agent is told the outbox
/// is full and stores nothing of the step, so no usage is lost. Real UsageEvent v1.0 payloads in
/// real SQLite files, so the pages merging frees are SQLite's own.
@Suite struct OutboxBoundTests {
    // MARK: Fixtures

    static let host = "host-7"
    static let instances = ["vm-a", "vm-b", "vm-c"]
    static let origin: Int64 = 1_763_726_400
    static let periodSeconds: Int64 = 30
    /// Small, so a test fills it in well under a second; with ~0.5 KB per event, about 2000 events.
    static let maxBytes = 1 << 20

    /// The `index`-th event of `instance`, with varied but deterministic metrics. Contiguous events tile
    /// time (`[origin + 30·i, origin + 30·i + 30)`); non-contiguous ones leave 30 s between periods.
    static func usageEvent(instance: String, index: Int, contiguous: Bool = true) -> UsageEvent {
        let k = (instances.firstIndex(of: instance) ?? 0) + 1
        let step = contiguous ? periodSeconds : 2 * periodSeconds
        let start = origin + Int64(index) * step
        let period = Period(start: start, end: start + periodSeconds)
        let metrics = UsageMetrics(
            cpuSeconds: Int64((index * 7 + k) % 61),
            cpuPercentAvg: Double((index * 37 + k * 11) % 10_000) / 100,
            memoryGB: Double((index * 101 + k * 7) % 64_000) / 1_000,
            memoryPercent: Double((index * 53 + k) % 1_000) / 10,
            storageGB: Double(20_000 + index) / 1_000,
            networkEgressMB: Double((index * 7_919 + k * 104_729) % 9_999_991) / 1e6,
            networkIngressMB: Double((index * 15_485_863 + k * 31) % 3_999_999) / 1e6,
            gpuSeconds: Int64((index * 3 + k) % 31))
        return UsageEvent(
            hostID: host, instanceID: instance, userID: "u-\(k)", orgID: k == 2 ? "org-1" : nil, period: period,
            metrics: metrics, timestamp: period.end + 1)
    }

    static func outboxEvent(_ event: UsageEvent) throws -> OutboxEvent {
        // A chained event keeps its chain (1.1); any other is written as 1.0.
        try OutboxEvent(event, encoder: UsageEventEncoder(version: event.seq == nil ? .v1_0 : .v1_1))
    }

    /// Commits events of every instance, interleaved (a, b, c, a, b, c, …, as the sampler writes them),
    /// until the database uses more than `target` bytes. Returns how many periods per instance it wrote.
    @discardableResult
    static func fill(
        _ database: AgentDatabase, above target: Int, contiguous: Bool = true, from first: Int = 0,
        instances: [String] = instances, adjust: (UsageEvent) -> UsageEvent = { $0 }
    ) throws -> Int {
        var next = first
        while try database.usedBytes() <= target {
            // Big steps while far from the target, single periods close to it, so it is passed by little.
            let near = try database.usedBytes() > target - target / 20
            let count = near ? 1 : 20
            var events: [OutboxEvent] = []
            for index in next..<(next + count) {
                for instance in instances {
                    events.append(
                        try outboxEvent(adjust(usageEvent(instance: instance, index: index, contiguous: contiguous))))
                }
            }
            try database.commit(MeteringCommit(events: events), now: origin)
            next += count
            #expect(next - first < 100_000, "the database never grew past \(target) bytes")
            if next - first >= 100_000 { break }
        }
        return next - first
    }

    static func withDatabase<T>(_ body: (AgentDatabase, String) throws -> T) throws -> T {
        try AgentDatabaseTests.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("agent.sqlite").path
            return try body(try AgentDatabase.open(path: path), path)
        }
    }

    /// The pending events, decoded; each row's columns must agree with its payload.
    static func pending(_ database: AgentDatabase, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> [(row: OutboxEvent, event: UsageEvent)]
    {
        try database.events().map { row in
            let event = try JSONDecoder().decode(UsageEvent.self, from: row.payload)
            #expect(row.eventID == event.eventID, sourceLocation: sourceLocation)
            #expect(row.eventType == event.eventType, sourceLocation: sourceLocation)
            #expect(row.instanceID == event.instanceID, sourceLocation: sourceLocation)
            #expect(row.periodStart == event.period.start && row.periodEnd == event.period.end, sourceLocation: sourceLocation)
            #expect(row.userID == event.userID && row.orgID == event.orgID, sourceLocation: sourceLocation)
            return (row, event)
        }
    }

    /// Billable totals of one instance; bytes as integers, so "exactly" means exactly.
    struct Totals: Equatable, CustomStringConvertible {
        var cpuSeconds: Int64 = 0
        var gpuSeconds: Int64 = 0
        var egressBytes: Int64 = 0
        var ingressBytes: Int64 = 0
        /// Seconds of usage covered.
        var seconds: Int64 = 0

        var description: String {
            "cpu \(cpuSeconds) s, gpu \(gpuSeconds) s, egress \(egressBytes) B, ingress \(ingressBytes) B over \(seconds) s"
        }
    }

    static func totals(_ events: [UsageEvent]) -> [String: Totals] {
        var result: [String: Totals] = [:]
        for event in events {
            var totals = result[event.instanceID, default: Totals()]
            totals.cpuSeconds += event.metrics.cpuSeconds
            totals.gpuSeconds += event.metrics.gpuSeconds
            totals.egressBytes += Int64((event.metrics.networkEgressMB * 1e6).rounded())
            totals.ingressBytes += Int64((event.metrics.networkIngressMB * 1e6).rounded())
            totals.seconds += event.period.seconds
            result[event.instanceID] = totals
        }
        return result
    }

    /// Each instance's periods, in time order, tile `[first start, last end)` with no gap or overlap.
    static func expectTiling(
        _ events: [UsageEvent], from start: [String: Int64], to end: [String: Int64],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for (instance, group) in Dictionary(grouping: events, by: \.instanceID) {
            let periods = group.map(\.period).sorted { $0.start < $1.start }
            #expect(periods.first?.start == start[instance], "\(instance) starts elsewhere", sourceLocation: sourceLocation)
            #expect(periods.last?.end == end[instance], "\(instance) ends elsewhere", sourceLocation: sourceLocation)
            for (earlier, later) in zip(periods, periods.dropFirst()) where later.start != earlier.end {
                Issue.record(
                    "\(instance): period \(later) does not start where \(earlier) ends", sourceLocation: sourceLocation)
            }
        }
    }

    static func bounds(_ events: [UsageEvent]) -> (start: [String: Int64], end: [String: Int64]) {
        var start: [String: Int64] = [:]
        var end: [String: Int64] = [:]
        for event in events {
            start[event.instanceID] = min(start[event.instanceID] ?? .max, event.period.start)
            end[event.instanceID] = max(end[event.instanceID] ?? .min, event.period.end)
        }
        return (start, end)
    }

    /// `body` throws `OutboxError.full` for `path` and `maxBytes`, with a description that names the file.
    static func expectFull(
        path: String, maxBytes: Int, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
    ) {
        let error = #expect(throws: OutboxError.self, sourceLocation: sourceLocation) { try body() }
        guard case .full(let errorPath, let used, let bound) = error else {
            Issue.record("expected OutboxError.full, got \(String(describing: error))", sourceLocation: sourceLocation)
            return
        }
        #expect(errorPath == path, sourceLocation: sourceLocation)
        #expect(bound == maxBytes, sourceLocation: sourceLocation)
        #expect(used > maxBytes, sourceLocation: sourceLocation)
        #expect(error?.description.contains(path) == true, "\(String(describing: error))", sourceLocation: sourceLocation)
    }

    // MARK: Merging

    @Test func mergingFreesSpaceAndKeepsEveryTotal() throws {
        try Self.withDatabase { database, _ in
            let periods = try Self.fill(database, above: Self.maxBytes / 10 * 9)
            let usedBefore = try database.usedBytes()
            #expect(usedBefore > Self.maxBytes / 10 * 9)
            let before = try Self.pending(database).map(\.event)
            #expect(before.count == periods * Self.instances.count)
            #expect(before.count > 1_000, "too few events to say anything about pages: \(before.count)")
            let (start, end) = Self.bounds(before)

            try database.makeRoom(maxBytes: Self.maxBytes)

            let used = try database.usedBytes()
            #expect(used <= Self.maxBytes, "still \(used) bytes after merging (was \(usedBefore))")
            // Everything here is mergeable, so it gets under the 80 % low-water mark.
            #expect(used <= Self.maxBytes / 10 * 8, "merging stopped at \(used) bytes (was \(usedBefore))")
            #expect(used < usedBefore)

            let after = try Self.pending(database)
            let events = after.map(\.event)
            #expect(events.count < before.count / 10, "\(before.count) events merged only into \(events.count)")
            #expect(Set(events.map(\.instanceID)) == Set(Self.instances))
            #expect(Self.totals(events) == Self.totals(before))
            Self.expectTiling(events, from: start, to: end)

            let stats = try database.stats()
            #expect(stats.pendingEvents == events.count)
            #expect(stats.attemptedEvents == 0, "merged events must be new, never-attempted events")
            #expect(stats.databaseBytes == used)
            #expect(stats.oldestPendingPeriodStart == Self.origin)

            let originals = Dictionary(uniqueKeysWithValues: before.map { ($0.eventID, $0) })
            for event in events {
                #expect(event.eventID == UsageEvent.eventID(hostID: event.hostID, instanceID: event.instanceID, period: event.period))
                #expect(event.version == "1.0" && event.eventType == UsageEvent.eventType && event.hostID == Self.host)
                if originals[event.eventID] != nil { continue }  // one left as it was
                // A merged event: owner kept, the latest stamp, storage of its last period, weighted averages.
                let parts = before.filter {
                    $0.instanceID == event.instanceID && $0.period.start >= event.period.start
                        && $0.period.end <= event.period.end
                }.sorted { $0.period.start < $1.period.start }
                #expect(parts.count > 1)
                guard let last = parts.last else { continue }
                #expect(event.userID == last.userID && event.orgID == last.orgID)
                #expect(event.timestamp == parts.map(\.timestamp).max())
                #expect(event.metrics.storageGB == last.metrics.storageGB)
                let seconds = Double(event.period.seconds)
                let cpu = parts.reduce(0.0) { $0 + $1.metrics.cpuPercentAvg * Double($1.period.seconds) } / seconds
                let memory = parts.reduce(0.0) { $0 + $1.metrics.memoryGB * Double($1.period.seconds) } / seconds
                #expect(abs(event.metrics.cpuPercentAvg - cpu) <= 0.0005 + 1e-9, "\(event.metrics.cpuPercentAvg) vs \(cpu)")
                #expect(abs(event.metrics.memoryGB - memory) <= 0.0000005 + 1e-9, "\(event.metrics.memoryGB) vs \(memory)")
            }
        }
    }

    @Test func leasedEventsAreNeverMerged() throws {
        try Self.withDatabase { database, _ in
            try Self.fill(database, above: Self.maxBytes / 10 * 9 + Self.maxBytes / 50)
            let before = try Self.pending(database).map(\.event)
            let (start, end) = Self.bounds(before)

            // The oldest five (a0 b0 c0 a1 b1) were offered to a consumer: one is waiting for a retry.
            let leased = try database.lease(now: 1, maxEvents: 5, maxBytes: 1 << 20)
            #expect(leased.count == 5)
            try database.scheduleRetry([leased[2].id], at: 1e12, error: "HTTP 503")

            try database.makeRoom(maxBytes: Self.maxBytes)

            #expect(try database.usedBytes() <= Self.maxBytes)
            let rows = try database.events()
            for lease in leased {
                #expect(rows.contains(lease.event), "leased \(lease.event.eventID) was merged or changed")
            }
            #expect(rows.count < before.count / 10)
            let after = try Self.pending(database).map(\.event)
            #expect(Self.totals(after) == Self.totals(before))
            Self.expectTiling(after, from: start, to: end)

            let stats = try database.stats()
            #expect(stats.attemptedEvents == 5)
            // Their attempts are as they were: the next lease is their second.
            let again = try database.lease(now: 2, maxEvents: 4, maxBytes: 1 << 20)
            #expect(again.map(\.event) == [leased[0], leased[1], leased[3], leased[4]].map(\.event))
            #expect(again.map(\.attempts) == [2, 2, 2, 2])
        }
    }

    @Test func belowNinetyPercentNothingIsMerged() throws {
        try Self.withDatabase { database, _ in
            try Self.fill(database, above: Self.maxBytes / 2)
            let before = try database.events()
            try database.makeRoom(maxBytes: Self.maxBytes)
            #expect(try database.events() == before)
        }
    }

    @Test func commitWithABoundMergesThenStoresTheStep() throws {
        try Self.withDatabase { database, _ in
            let periods = try Self.fill(database, above: Self.maxBytes / 10 * 9)
            let before = try Self.pending(database).map(\.event)
            let next = Self.usageEvent(instance: "vm-a", index: periods)
            let step = MeteringCommit(
                checkpoints: [CheckpointRecord(instanceID: "vm-a", format: 1, state: Data("after".utf8))],
                events: [try Self.outboxEvent(next)])

            try database.commit(step, now: Self.origin, maxBytes: Self.maxBytes)

            #expect(try database.usedBytes() <= Self.maxBytes)
            let rows = try database.events()
            #expect(rows.last == step.events[0], "the new period is stored as it came, last")
            #expect(rows.count < before.count / 10)
            #expect(try database.checkpoints()["vm-a"]?.state == Data("after".utf8))
            let after = try Self.pending(database).map(\.event)
            #expect(Self.totals(after) == Self.totals(before + [next]))
            var (start, end) = Self.bounds(before)
            end["vm-a"] = next.period.end
            Self.expectTiling(after, from: start, to: end)
        }
    }

    /// Host mode has one instance. Its owner changes when the configuration does (here `org_id` is set
    /// at a reload, 500 periods in): the periods before and after are two runs, each mergeable on its
    /// own. The change must not stop merging for the instance, or a long consumer outage fills the
    /// outbox with mergeable usage and the agent stops metering.
    @Test func anOwnerChangeSplitsTheRunRatherThanStoppingTheMerge() throws {
        try Self.withDatabase { database, _ in
            let change = Self.origin + 500 * Self.periodSeconds
            try Self.fill(database, above: Self.maxBytes, instances: ["vm-a"]) { event in
                var event = event
                event.orgID = event.period.start < change ? nil : "org-1"
                return event
            }
            let before = try Self.pending(database).map(\.event)
            #expect(before.count > 1_000)
            let (start, end) = Self.bounds(before)

            #expect(throws: Never.self, "mergeable usage was refused as full") {
                try database.makeRoom(maxBytes: Self.maxBytes)
            }

            #expect(try database.usedBytes() <= Self.maxBytes)
            let after = try Self.pending(database).map(\.event)
            #expect(after.count < before.count / 10, "\(before.count) events merged only into \(after.count)")
            #expect(Self.totals(after) == Self.totals(before))
            Self.expectTiling(after, from: start, to: end)
            for event in after {
                // A merged event never spans the change: one owner per event.
                let orgs = Set(
                    before.filter { $0.period.start >= event.period.start && $0.period.end <= event.period.end }
                        .map { $0.orgID ?? "-" })
                #expect(orgs == [event.orgID ?? "-"], "\(event.period) mixes owners \(orgs)")
            }
        }
    }

    // MARK: Full

    @Test func whenEveryEventWasAttemptedTheOutboxIsFull() throws {
        try Self.withDatabase { database, path in
            let periods = try Self.fill(database, above: Self.maxBytes)
            let leased = try database.lease(now: 1, maxEvents: 1_000_000, maxBytes: 1 << 30)
            try Self.expectFullAndNothingChanges(database, path: path, next: periods, leased: leased.count)
        }
    }

    /// UsageEvents 1.1 are never merged: a merge would rewrite their instances' chains. Contiguous,
    /// never offered, and still full; the refused step's usage waits in its checkpoint as with any
    /// other full outbox, and goes into the next event once there is room.
    @Test func chainedEventsAreNeverMergedSoTheOutboxIsFull() throws {
        try Self.withDatabase { database, path in
            var heads: [String: ChainHead] = [:]
            let periods = try Self.fill(database, above: Self.maxBytes) { event in
                let chained = try! event.chained(after: heads[event.instanceID])
                heads[event.instanceID] = chained.chainHead
                return chained
            }
            let before = try database.events()
            try Self.expectFullAndNothingChanges(database, path: path, next: periods, leased: 0)
            // What was not delivered meanwhile is still there byte for byte: nothing was merged.
            let stored = Dictionary(uniqueKeysWithValues: before.map { ($0.eventID, $0) })
            let left = try database.events().filter { stored[$0.eventID] != nil }
            #expect(!left.isEmpty && left.allSatisfy { stored[$0.eventID] == $0 })
            let decoded = try left.map { try JSONDecoder().decode(UsageEvent.self, from: $0.payload) }
            #expect(decoded.allSatisfy { $0.seq != nil && $0.version == "1.1" })
        }
    }

    @Test func whenNoPeriodsAreContiguousTheOutboxIsFull() throws {
        try Self.withDatabase { database, path in
            let periods = try Self.fill(database, above: Self.maxBytes, contiguous: false)
            try Self.expectFullAndNothingChanges(database, path: path, next: periods, contiguous: false, leased: 0)
        }
    }

    /// Over the bound with nothing mergeable: `makeRoom` and a step that brings events throw `.full`
    /// and nothing is stored or deleted, not the step's checkpoint either; a step with no events still goes.
    static func expectFullAndNothingChanges(
        _ database: AgentDatabase, path: String, next: Int, contiguous: Bool = true, leased: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        try database.commit(
            MeteringCommit(checkpoints: [CheckpointRecord(instanceID: "vm-a", format: 1, state: Data("old".utf8))]),
            now: origin)
        let before = try database.events()
        let statsBefore = try database.stats()
        #expect(statsBefore.attemptedEvents == leased, sourceLocation: sourceLocation)
        #expect(try database.usedBytes() > maxBytes, sourceLocation: sourceLocation)

        expectFull(path: path, maxBytes: maxBytes, sourceLocation: sourceLocation) {
            try database.makeRoom(maxBytes: maxBytes)
        }
        #expect(try database.events() == before, "makeRoom changed pending events", sourceLocation: sourceLocation)

        let step = MeteringCommit(
            checkpoints: [CheckpointRecord(instanceID: "vm-a", format: 1, state: Data("new".utf8))],
            events: [try outboxEvent(usageEvent(instance: "vm-a", index: next, contiguous: contiguous))],
            gaps: [GapRecord(instanceID: "vm-a", reason: "reboot", from: 1, to: 2, detail: "")])
        expectFull(path: path, maxBytes: maxBytes, sourceLocation: sourceLocation) {
            try database.commit(step, now: origin, maxBytes: maxBytes)
        }
        #expect(try database.events() == before, "a refused step changed pending events", sourceLocation: sourceLocation)
        #expect(try database.checkpoints()["vm-a"]?.state == Data("old".utf8), "the checkpoint advanced", sourceLocation: sourceLocation)
        #expect(try database.gaps().isEmpty, sourceLocation: sourceLocation)
        let statsAfter = try database.stats()
        #expect(statsAfter.pendingEvents == statsBefore.pendingEvents, sourceLocation: sourceLocation)
        #expect(statsAfter.pendingBytes == statsBefore.pendingBytes, sourceLocation: sourceLocation)
        #expect(statsAfter.attemptedEvents == statsBefore.attemptedEvents, sourceLocation: sourceLocation)

        // A step without events (a checkpoint only) is not refused: it adds no billable data.
        try database.commit(
            MeteringCommit(checkpoints: [CheckpointRecord(instanceID: "vm-a", format: 1, state: Data("idle".utf8))]),
            now: origin, maxBytes: maxBytes)
        #expect(try database.checkpoints()["vm-a"]?.state == Data("idle".utf8), sourceLocation: sourceLocation)

        // Once the consumer takes events, there is room again.
        let delivered = try database.lease(now: 1e12, maxEvents: before.count / 2, maxBytes: 1 << 30)
        try database.acknowledge(delivered.map(\.id))
        try database.commit(step, now: origin, maxBytes: maxBytes)
        #expect(try database.events().last == step.events[0], sourceLocation: sourceLocation)
        #expect(try database.checkpoints()["vm-a"]?.state == Data("new".utf8), sourceLocation: sourceLocation)
    }

    @Test func betweenNinetyAndOneHundredPercentWithNothingToMergeIsNotFull() throws {
        try Self.withDatabase { database, _ in
            try Self.fill(database, above: Self.maxBytes / 10 * 9, contiguous: false)
            let used = try database.usedBytes()
            try #require(used <= Self.maxBytes, "the fill overshot: \(used)")
            let before = try database.events()
            try database.makeRoom(maxBytes: Self.maxBytes)
            #expect(try database.events() == before)
        }
    }
}
