import Foundation
import TestSupport
import Testing
import UsageModel

/// ThresholdEvent v1.0: deterministic ids, the exact wire shape, and docs/schema/threshold-event-1.0.json
/// checked by an independent validator (Python's `jsonschema`, draft 2020-12).
@Suite struct ThresholdEventTests {
    static let period = Period(start: 1_763_726_400, end: 1_763_726_430)

    static func event(
        host: String = "host-7", instance: String = "vm-42", user: String = "u-9", org: String? = nil,
        state: ThresholdEvent.State = .firing, rule: String = "cpu-high", severity: String = "warning",
        metric: String = "cpu_percent_avg", op: String = ">", value: Double = 95.5, threshold: Double = 90,
        labels: [String: String] = ["team": "ops"], period: Period = period, timestamp: Int64 = 1_763_726_431
    ) -> ThresholdEvent {
        ThresholdEvent(
            hostID: host, instanceID: instance, userID: user, orgID: org, state: state, rule: rule, severity: severity,
            metric: metric, op: op, value: value, threshold: threshold, labels: labels, period: period, timestamp: timestamp)
    }

    // MARK: Identity

    @Test func initStampsTypeVersionAndID() {
        let event = Self.event()
        #expect(event.eventType == "threshold_alert")
        #expect(event.version == "1.0")
        #expect(
            event.eventID
                == ThresholdEvent.eventID(hostID: "host-7", rule: "cpu-high", instanceID: "vm-42", state: .firing, period: Self.period))
        // Pinned: Python's uuid.uuid5(UUID("3d6a0e52-7b1f-4c8e-9a41-5f2d88c3176b"),
        // "threshold_alert\nhost-7\ncpu-high\nvm-42\nfiring\n1763726400\n1763726430").
        #expect(event.eventID == "2494d0b7-77af-5d58-9ddb-f35716f6bb0f")
        #expect(Self.event(state: .resolved).eventID == "14a6fda2-e621-546b-ac31-110cf7b5b725")
    }

    @Test func theSameTransitionGivesTheSameID() {
        // Value, threshold, severity, labels, user and time may differ: a period evaluated again
        // after a crash is still the same event.
        let again = Self.event(
            user: "someone-else", org: "org-1", severity: "critical", metric: "memory_percent", op: ">=", value: 99,
            threshold: 80, labels: [:], timestamp: 1_800_000_000)
        #expect(again.eventID == Self.event().eventID)
    }

    @Test(arguments: [
        ("host", ThresholdEventTests.event(host: "host-8")),
        ("instance", ThresholdEventTests.event(instance: "vm-43")),
        ("rule", ThresholdEventTests.event(rule: "cpu-higher")),
        ("state", ThresholdEventTests.event(state: .resolved)),
        ("period start", ThresholdEventTests.event(period: Period(start: 1_763_726_401, end: 1_763_726_430))),
        ("period end", ThresholdEventTests.event(period: Period(start: 1_763_726_400, end: 1_763_726_460))),
        ("rule and instance swapped", ThresholdEventTests.event(instance: "cpu-high", rule: "vm-42")),
        ("boundary moved", ThresholdEventTests.event(instance: "m-42", rule: "cpu-highv")),
    ])
    func anyIdentityFieldChangesTheID(changed: String, other: ThresholdEvent) {
        #expect(other.eventID != Self.event().eventID, "changing the \(changed) kept the id")
    }

    @Test func idsNeverMeetUsageEventIDs() {
        // Same host, instance and period as a usage event: the event type in the name keeps them apart.
        let usage = UsageEvent.eventID(hostID: "host-7", instanceID: "vm-42", period: Self.period)
        #expect(usage != Self.event().eventID && usage != Self.event(state: .resolved).eventID)
    }

    // MARK: Wire shape

    @Test func encodesTheDocumentedShapeWithSortedKeys() throws {
        let data = try ThresholdEventEncoder().encode(Self.event())
        let text = String(decoding: data, as: UTF8.self)
        #expect(
            text
                == #"{"event_id":"2494d0b7-77af-5d58-9ddb-f35716f6bb0f","event_type":"threshold_alert","host_id":"host-7","#
                + #""instance_id":"vm-42","labels":{"team":"ops"},"metric":"cpu_percent_avg","op":">","org_id":null,"#
                + #""period":{"end":1763726430,"start":1763726400},"rule":"cpu-high","severity":"warning","state":"firing","#
                + #""threshold":90,"timestamp":1763726431,"user_id":"u-9","value":95.5,"version":"1.0"}"#)
    }

    @Test func decodesWhatItEncodes() throws {
        for event in [Self.event(), Self.event(org: "org-1", state: .resolved, labels: [:])] {
            let decoded = try JSONDecoder().decode(ThresholdEvent.self, from: try ThresholdEventEncoder().encode(event))
            #expect(decoded == event)
        }
    }

    @Test func theEncoderStampsItsVersion() throws {
        var event = Self.event()
        event.version = "0.9"
        let object = try #require(try JSONSerialization.jsonObject(with: try ThresholdEventEncoder().encode(event)) as? [String: Any])
        #expect(object["version"] as? String == "1.0")
    }

    @Test func nonFiniteNumbersAreRefused() {
        #expect(throws: (any Error).self) { try ThresholdEventEncoder().encode(Self.event(value: .nan)) }
        #expect(throws: (any Error).self) { try ThresholdEventEncoder().encode(Self.event(threshold: .infinity)) }
    }

    // MARK: Schema

    static let schema = TestPaths.file("docs/schema/threshold-event-1.0.json")

    @Test func encodedEventsMatchTheSchema() throws {
        let events = [
            Self.event(),
            Self.event(org: "org-1", state: .resolved, value: 79.25, threshold: 80),
            Self.event(severity: "critical", metric: "outbox_pending_events", op: ">=", value: 100_000, labels: [:]),
            Self.event(
                rule: "fs.root:used_pct", severity: "info",
                metric: "filesystem_used_percent", op: "<=", value: -0.5, threshold: 1e-3),
        ]
        let encoder = ThresholdEventEncoder()
        let array = "[" + (try events.map { String(decoding: try encoder.encode($0), as: UTF8.self) }).joined(separator: ",") + "]"
        let verdicts = try SchemaValidator.validate(Data(array.utf8), schema: Self.schema)
        try #require(verdicts.count == events.count)
        for (index, errors) in verdicts.enumerated() {
            #expect(errors.isEmpty, "event \(index) breaks the schema: \(errors)")
        }
        // The schema requires every field the code emits and allows nothing more.
        let schema = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.schema)) as? [String: Any])
        let properties = try #require(schema["properties"] as? [String: Any])
        let required = try #require(schema["required"] as? [String])
        for event in events {
            let object = try #require(try JSONSerialization.jsonObject(with: try encoder.encode(event)) as? [String: Any])
            #expect(Set(object.keys) == Set(properties.keys))
            #expect(Set(object.keys) == Set(required))
        }
    }

    typealias Change = SchemaValidator.Change

    /// Changes to a valid event, by what they break; each must be rejected.
    static let wrong: [(String, Change)] = [
        ("state unknown", { $0["state"] = "pending" }),
        ("event_type of a usage event", { $0["event_type"] = "resource_usage" }),
        ("version 1.1", { $0["version"] = "1.1" }),
        ("severity unknown", { $0["severity"] = "fatal" }),
        ("metric unknown", { $0["metric"] = "disk_iops" }),
        ("op unknown", { $0["op"] = "==" }),
        ("value a string", { $0["value"] = "95.5" }),
        ("value null", { $0["value"] = NSNull() }),
        ("threshold missing", { $0["threshold"] = nil }),
        ("labels missing", { $0["labels"] = nil }),
        ("a label with a number", { $0["labels"] = ["team": 7] }),
        ("a label name with a dash", { $0["labels"] = ["my-team": "ops"] }),
        ("a reserved label name", { $0["labels"] = ["__name__": "x"] }),
        ("rule with a space", { $0["rule"] = "cpu high" }),
        ("rule empty", { $0["rule"] = "" }),
        ("org_id missing", { $0["org_id"] = nil }),
        ("event_id a version 4 UUID", { $0["event_id"] = "2494d0b7-77af-4d58-9ddb-f35716f6bb0f" }),
        ("timestamp negative", { $0["timestamp"] = -1 }),
        ("instance_id empty", { $0["instance_id"] = "" }),
        ("period with an extra key", { $0["period"] = ["start": 1_763_726_400, "end": 1_763_726_430, "length": 30] }),
        ("an extra top-level key", { $0["reason"] = "cleared" }),
    ]

    static let stillValid: [(String, Change)] = [
        ("org_id set", { $0["org_id"] = "org-1" }),
        ("no labels", { $0["labels"] = [String: String]() }),
        ("a negative value", { $0["value"] = -3.5 }),
    ]

    @Test func schemaRejectsWrongEventsAndAcceptsRightOnes() throws {
        let base = try #require(
            try JSONSerialization.jsonObject(with: try ThresholdEventEncoder().encode(Self.event())) as? [String: Any])
        try SchemaValidator.expectVerdicts(base: base, stillValid: Self.stillValid, wrong: Self.wrong, schema: Self.schema)
    }
}
