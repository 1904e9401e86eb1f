import Foundation
import Testing
import UsageModel

/// `UsageEvent.merging`: how the outbox folds a run of contiguous periods of one instance into one
/// event near its size bound. Totals must survive exactly; averages are weighted by period length.
@Suite struct UsageEventMergeTests {
    static let origin: Int64 = 1_763_726_400

    static func event(
        start: Int64, seconds: Int64 = 30, host: String = "host-7", instance: String = "vm-42", user: String = "u-9",
        org: String? = "org-1", metrics: UsageMetrics = UsageMetrics(), timestamp: Int64? = nil
    ) -> UsageEvent {
        let period = Period(start: origin + start, end: origin + start + seconds)
        return UsageEvent(
            hostID: host, instanceID: instance, userID: user, orgID: org, period: period, metrics: metrics,
            timestamp: timestamp ?? period.end + 1)
    }

    /// Three contiguous periods of 30, 60 and 10 seconds.
    static let run: [UsageEvent] = [
        event(
            start: 0, seconds: 30,
            metrics: UsageMetrics(
                cpuSeconds: 12, cpuPercentAvg: 40, memoryGB: 2, memoryPercent: 25, storageGB: 20.4,
                networkEgressMB: 0.1, networkIngressMB: 1.000001, gpuSeconds: 3)),
        event(
            start: 30, seconds: 60,
            metrics: UsageMetrics(
                cpuSeconds: 50, cpuPercentAvg: 10, memoryGB: 5, memoryPercent: 62.5, storageGB: 20.5,
                networkEgressMB: 0.2, networkIngressMB: 2.5, gpuSeconds: 0)),
        event(
            start: 90, seconds: 10,
            metrics: UsageMetrics(
                cpuSeconds: 1, cpuPercentAvg: 100, memoryGB: 8, memoryPercent: 100, storageGB: 19.75,
                networkEgressMB: 123.456789, networkIngressMB: 0, gpuSeconds: 7)),
    ]

    // MARK: Merging

    @Test func sumsAdditiveMetricsAndWeightsAverages() throws {
        let merged = try #require(UsageEvent.merging(Self.run))
        let period = Period(start: Self.origin, end: Self.origin + 100)
        #expect(merged.period == period)
        #expect(merged.metrics.cpuSeconds == 63)
        #expect(merged.metrics.gpuSeconds == 10)
        // Summed, then rounded to whole bytes: 0.1 + 0.2 is 0.3, not 0.30000000000000004.
        #expect(merged.metrics.networkEgressMB == 123.756789)
        #expect(merged.metrics.networkIngressMB == 3.500001)
        // (40·30 + 10·60 + 100·10) / 100 = 28; (2·30 + 5·60 + 8·10) / 100 = 4.4; (25·30 + 62.5·60 + 100·10) / 100 = 55.
        #expect(merged.metrics.cpuPercentAvg == 28)
        #expect(merged.metrics.memoryGB == 4.4)
        #expect(merged.metrics.memoryPercent == 55)
        // Storage is a level, not a flow: what was in use at the end.
        #expect(merged.metrics.storageGB == 19.75)

        #expect(merged.eventID == UsageEvent.eventID(hostID: "host-7", instanceID: "vm-42", period: period))
        #expect(!Self.run.map(\.eventID).contains(merged.eventID))
        #expect(merged.eventType == UsageEvent.eventType)
        #expect(merged.version == "1.0")
        #expect(merged.hostID == "host-7" && merged.instanceID == "vm-42")
        #expect(merged.userID == "u-9" && merged.orgID == "org-1")
        #expect(merged.timestamp == Self.origin + 101)
    }

    @Test func theTimestampIsTheLatestNotTheLast() throws {
        var events = Self.run
        events[0].timestamp = Self.origin + 5_000  // re-made after a crash, say
        events[2].timestamp = Self.origin + 200
        #expect(UsageEvent.merging(events)?.timestamp == Self.origin + 5_000)
    }

    @Test func averagesRoundToTheirPrecision() throws {
        // Weighted averages with infinite expansions: 1/3 of the way.
        let events = [
            Self.event(start: 0, seconds: 20, metrics: UsageMetrics(cpuPercentAvg: 0, memoryGB: 0, memoryPercent: 0)),
            Self.event(start: 20, seconds: 10, metrics: UsageMetrics(cpuPercentAvg: 1, memoryGB: 1, memoryPercent: 1)),
        ]
        let merged = try #require(UsageEvent.merging(events))
        #expect(merged.metrics.cpuPercentAvg == 0.333)
        #expect(merged.metrics.memoryGB == 0.333333)
        #expect(merged.metrics.memoryPercent == 0.333)
    }

    @Test func manySmallTransfersSumToWholeBytes() throws {
        // 1000 periods of 1 234 567 bytes each: the floating-point sum drifts, the merged total may not.
        let events = (0..<1_000).map { index in
            Self.event(
                start: Int64(index) * 30,
                metrics: UsageMetrics(cpuSeconds: 1, networkEgressMB: 1.234567, networkIngressMB: 0.000001, gpuSeconds: 2))
        }
        let merged = try #require(UsageEvent.merging(events))
        #expect(merged.period == Period(start: Self.origin, end: Self.origin + 30_000))
        #expect(merged.metrics.cpuSeconds == 1_000 && merged.metrics.gpuSeconds == 2_000)
        #expect(Int64((merged.metrics.networkEgressMB * 1e6).rounded()) == 1_234_567_000)
        #expect(merged.metrics.networkEgressMB == 1_234.567)
        #expect(merged.metrics.networkIngressMB == 0.001)
    }

    @Test func mergingMergedEventsGivesTheSameAsMergingAll() throws {
        let all = (0..<9).map { (index: Int) -> UsageEvent in
            let i = Double(index)
            let metrics = UsageMetrics(
                cpuSeconds: Int64(index), cpuPercentAvg: 10 * i, memoryGB: i, memoryPercent: 5 * i, storageGB: i,
                networkEgressMB: 0.1 * i, networkIngressMB: 0.01, gpuSeconds: 1)
            return Self.event(start: Int64(index) * 30, metrics: metrics)
        }
        let once = try #require(UsageEvent.merging(all))
        let slices: [[UsageEvent]] = [Array(all[0..<3]), Array(all[3..<5]), Array(all[5..<9])]
        let parts = try slices.map { (slice: [UsageEvent]) throws -> UsageEvent in try #require(UsageEvent.merging(slice)) }
        let twice = try #require(UsageEvent.merging(parts))
        #expect(twice == once)
    }

    @Test func aSingleEventComesBackUnchanged() throws {
        for event in Self.run {
            #expect(UsageEvent.merging([event]) == event)
        }
        var odd = Self.run[1]
        odd.version = "0.9"  // even one this agent would not make
        odd.timestamp = 0
        #expect(UsageEvent.merging([odd]) == odd)
    }

    @Test func anEmptyListMergesToNothing() {
        #expect(UsageEvent.merging([]) == nil)
    }

    // MARK: Refusals

    static let refusals: [(String, [UsageEvent])] = [
        ("a gap between periods", [event(start: 0), event(start: 31)]),
        ("overlapping periods", [event(start: 0), event(start: 29)]),
        ("periods out of order", [event(start: 30), event(start: 0)]),
        ("the same period twice", [event(start: 0), event(start: 0)]),
        ("a gap after a contiguous pair", [event(start: 0), event(start: 30), event(start: 90)]),
        ("another instance", [event(start: 0), event(start: 30, instance: "vm-43")]),
        ("another host", [event(start: 0), event(start: 30, host: "host-8")]),
        ("another user", [event(start: 0), event(start: 30, user: "u-10")]),
        ("another org", [event(start: 0), event(start: 30, org: "org-2")]),
        ("an org and none", [event(start: 0), event(start: 30, org: nil)]),
        ("none and an org", [event(start: 0, org: nil), event(start: 30)]),
        ("a different last one", [event(start: 0), event(start: 30), event(start: 60, instance: "vm-43")]),
        ("another version", [event(start: 0), versioned(event(start: 30), "1.1")]),
        ("another event type", [event(start: 0), typed(event(start: 30), "other_usage")]),
    ]

    static func versioned(_ event: UsageEvent, _ version: String) -> UsageEvent {
        var event = event
        event.version = version
        return event
    }

    static func typed(_ event: UsageEvent, _ type: String) -> UsageEvent {
        var event = event
        event.eventType = type
        return event
    }

    @Test(arguments: refusals)
    func refusesWhatIsNotOneRunOfOneInstance(why: String, events: [UsageEvent]) {
        #expect(UsageEvent.merging(events) == nil, "merged despite \(why)")
    }

    @Test func sameOwnerWithoutOrgMerges() throws {
        let merged = try #require(UsageEvent.merging([Self.event(start: 0, org: nil), Self.event(start: 30, org: nil)]))
        #expect(merged.orgID == nil)
        #expect(merged.period.seconds == 60)
    }

    @Test func theVersionIsKept() throws {
        let events = [Self.event(start: 0), Self.event(start: 30)].map { Self.versioned($0, "0.9") }
        #expect(UsageEvent.merging(events)?.version == "0.9")
    }
}
