import Foundation
import Testing
import UsageModel

/// UsageEvent v1.0: deterministic ids and the exact wire shape of DESIGN.md.
@Suite struct UsageEventTests {
    static let period = Period(start: 1_763_726_400, end: 1_763_726_430)
    static let metrics = UsageMetrics(
        cpuSeconds: 12, cpuPercentAvg: 41.7, memoryGB: 3.91, memoryPercent: 48.9, storageGB: 20.4,
        networkEgressMB: 1.82, networkIngressMB: 0.44, gpuSeconds: 3)

    static func event(
        host: String = "host-7", instance: String = "vm-42", user: String = "u-9", org: String? = nil,
        period: Period = period, metrics: UsageMetrics = metrics, timestamp: Int64 = 1_763_726_431
    ) -> UsageEvent {
        UsageEvent(
            hostID: host, instanceID: instance, userID: user, orgID: org, period: period, metrics: metrics,
            timestamp: timestamp)
    }

    // MARK: Identity

    @Test func initStampsTypeVersionAndID() {
        let event = Self.event()
        #expect(event.eventType == "resource_usage")
        #expect(event.version == "1.0")
        #expect(event.eventID == UsageEvent.eventID(hostID: "host-7", instanceID: "vm-42", period: Self.period))
        // Pinned: computed with Python's uuid.uuid5 in hostmeter's namespace.
        #expect(event.eventID == "025e0578-ef92-562b-ba05-67da19f411dd")
    }

    @Test func sameHostInstanceAndPeriodGiveTheSameID() {
        let first = Self.event()
        // Everything but host, instance and period may differ: a resend after a crash, with usage
        // measured again or stamped at another time, is still the same event.
        let again = Self.event(
            user: "someone-else", org: "org-1", metrics: UsageMetrics(cpuSeconds: 99), timestamp: 1_800_000_000)
        #expect(again.eventID == first.eventID)
        #expect(
            UsageEvent(
                hostID: "host-7", instanceID: "vm-42", userID: "u-9", orgID: nil, period: Self.period,
                metrics: Self.metrics, timestamp: 0
            ).eventID == first.eventID)
    }

    @Test(arguments: [
        ("host", UsageEventTests.event(host: "host-8")),
        ("instance", UsageEventTests.event(instance: "vm-43")),
        ("period start", UsageEventTests.event(period: Period(start: 1_763_726_401, end: 1_763_726_430))),
        ("period end", UsageEventTests.event(period: Period(start: 1_763_726_400, end: 1_763_726_460))),
        ("next period", UsageEventTests.event(period: Period(start: 1_763_726_430, end: 1_763_726_460))),
        // Host and instance swapped, and a boundary moved between them: the name's separators keep them apart.
        ("host and instance swapped", UsageEventTests.event(host: "vm-42", instance: "host-7")),
        ("boundary moved", UsageEventTests.event(host: "host-7v", instance: "m-42")),
    ])
    func anyIdentityFieldChangesTheID(changed: String, other: UsageEvent) {
        #expect(other.eventID != Self.event().eventID, "changing the \(changed) kept the id")
    }

    @Test func idsOfManyPeriodsAreDistinct() {
        var seen: Set<String> = []
        for start in stride(from: Int64(1_763_726_400), to: 1_763_726_400 + 30 * 1000, by: 30) {
            for instance in ["vm-1", "vm-2", "vm-3"] {
                seen.insert(UsageEvent.eventID(
                    hostID: "host-7", instanceID: instance, period: Period(start: start, end: start + 30)))
            }
        }
        #expect(seen.count == 3000)
    }

    // MARK: Wire format

    static let topLevelKeys: Set<String> = [
        "event_id", "event_type", "version", "timestamp", "host_id", "instance_id", "user_id", "org_id", "metrics",
        "period",
    ]
    static let metricKeys: Set<String> = [
        "cpu_seconds", "cpu_percent_avg", "memory_gb", "memory_percent", "storage_gb", "network_egress_mb",
        "network_ingress_mb", "gpu_seconds",
    ]

    @Test func encodesExactlyTheWireKeys() throws {
        let object = try Self.jsonObject(try JSONEncoder().encode(Self.event()))
        #expect(Set(object.keys) == Self.topLevelKeys)
        let metrics = try #require(object["metrics"] as? [String: Any])
        #expect(Set(metrics.keys) == Self.metricKeys)
        let period = try #require(object["period"] as? [String: Any])
        #expect(Set(period.keys) == ["start", "end"])

        #expect(object["event_id"] as? String == "025e0578-ef92-562b-ba05-67da19f411dd")
        #expect(object["event_type"] as? String == "resource_usage")
        #expect(object["version"] as? String == "1.0")
        #expect(object["timestamp"] as? Int == 1_763_726_431)
        #expect(object["host_id"] as? String == "host-7")
        #expect(object["instance_id"] as? String == "vm-42")
        #expect(object["user_id"] as? String == "u-9")
        #expect(metrics["cpu_seconds"] as? Int == 12)
        #expect(metrics["cpu_percent_avg"] as? Double == 41.7)
        #expect(metrics["memory_gb"] as? Double == 3.91)
        #expect(metrics["memory_percent"] as? Double == 48.9)
        #expect(metrics["storage_gb"] as? Double == 20.4)
        #expect(metrics["network_egress_mb"] as? Double == 1.82)
        #expect(metrics["network_ingress_mb"] as? Double == 0.44)
        #expect(metrics["gpu_seconds"] as? Int == 3)
        #expect(period["start"] as? Int == 1_763_726_400)
        #expect(period["end"] as? Int == 1_763_726_430)
    }

    @Test func orgIDIsNullWhenUnsetAndAStringWhenSet() throws {
        let unset = try Self.jsonObject(try JSONEncoder().encode(Self.event(org: nil)))
        #expect(unset.keys.contains("org_id"), "org_id must be present even when nil")
        #expect(unset["org_id"] is NSNull)
        let text = String(decoding: try JSONEncoder().encode(Self.event(org: nil)), as: UTF8.self)
        #expect(text.contains(#""org_id":null"#))

        let set = try Self.jsonObject(try JSONEncoder().encode(Self.event(org: "org-1")))
        #expect(set["org_id"] as? String == "org-1")
    }

    @Test(arguments: [nil, "org-1"] as [String?])
    func roundTripsThroughJSONDecoder(org: String?) throws {
        let event = Self.event(org: org)
        for data in [try JSONEncoder().encode(event), try UsageEventEncoder().encode(event)] {
            #expect(try JSONDecoder().decode(UsageEvent.self, from: data) == event)
        }
    }

    @Test func decodesTheDesignDocumentExample() throws {
        let json = """
            {"event_id":"025e0578-ef92-562b-ba05-67da19f411dd","event_type":"resource_usage","version":"1.0",
             "timestamp":1763726431,"host_id":"host-7","instance_id":"vm-42","user_id":"u-9","org_id":null,
             "metrics":{"cpu_seconds":12,"cpu_percent_avg":41.7,"memory_gb":3.91,"memory_percent":48.9,
                        "storage_gb":20.4,"network_egress_mb":1.82,"network_ingress_mb":0.44,"gpu_seconds":3},
             "period":{"start":1763726400,"end":1763726430}}
            """
        #expect(try JSONDecoder().decode(UsageEvent.self, from: Data(json.utf8)) == Self.event())
    }

    // MARK: UsageEventEncoder

    @Test func encoderEmitsTheCurrentVersionByDefault() throws {
        #expect(UsageEventEncoder().version == .current)
        #expect(UsageSchemaVersion.current.rawValue == "1.0")
        let object = try Self.jsonObject(try UsageEventEncoder().encode(Self.event()))
        #expect(object["version"] as? String == "1.0")
        #expect(Set(object.keys) == Self.topLevelKeys)
    }

    @Test(arguments: UsageSchemaVersion.allCases)
    func encoderStampsItsVersion(version: UsageSchemaVersion) throws {
        // A 1.1 event is chained before it is encoded.
        var event = version == .v1_1 ? try Self.event().chained(after: nil) : Self.event()
        event.version = "0.0-not-a-version"
        let data = try UsageEventEncoder(version: version).encode(event)
        let decoded = try JSONDecoder().decode(UsageEvent.self, from: data)
        #expect(decoded.version == version.rawValue)
        // Only the version is stamped; the id is the same in every version.
        event.version = version.rawValue
        #expect(decoded == event)
    }

    @Test func encoderOutputIsStable() throws {
        // Sorted keys: the same event is the same bytes, so a stored payload can be compared and hashed.
        let encoder = UsageEventEncoder()
        let data = try encoder.encode(Self.event())
        #expect(try encoder.encode(Self.event()) == data)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.hasPrefix(#"{"event_id":"025e0578-ef92-562b-ba05-67da19f411dd","event_type":"resource_usage","#))
    }

    static func jsonObject(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}
