import Foundation
import TestSupport
import Testing
import UsageModel

/// docs/schema/usage-event-1.0.json against what `hostmeter sample --events` really prints,
/// checked by an independent validator: Python's `jsonschema` (draft 2020-12).
@Suite struct UsageEventSchemaTests {
    static let schema = TestPaths.file("docs/schema/usage-event-1.0.json")

    @Test func realEventsMatchTheSchema() throws {
        let result = try hostmeter("sample", "--events", "--periods", "2")
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let events = try #require(
            try JSONSerialization.jsonObject(with: result.stdout) as? [[String: Any]],
            "not a JSON array of objects: \(String(decoding: result.stdout, as: UTF8.self))")
        #expect(events.count == 2)

        let verdicts = try SchemaValidator.validate(result.stdout, schema: Self.schema)
        #expect(verdicts.count == events.count)
        for (index, errors) in verdicts.enumerated() {
            #expect(errors.isEmpty, "event \(index) breaks the schema: \(errors)")
        }
        // The schema requires every field the code emits and allows nothing more, so the two agree
        // on the field list; this names the difference when they do not.
        let schema = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.schema)) as? [String: Any])
        let properties = try #require(schema["properties"] as? [String: Any])
        let metrics = try #require((properties["metrics"] as? [String: Any])?["properties"] as? [String: Any])
        for event in events {
            #expect(Set(event.keys) == Set(properties.keys))
            #expect(Set((event["metrics"] as? [String: Any] ?? [:]).keys) == Set(metrics.keys))
        }
    }

    /// The design document's example event, which the schema must accept.
    static let example = """
        {"event_id":"025e0578-ef92-562b-ba05-67da19f411dd","event_type":"resource_usage","version":"1.0",
         "timestamp":1763726431,"host_id":"host-7","instance_id":"vm-42","user_id":"u-9","org_id":null,
         "metrics":{"cpu_seconds":12,"cpu_percent_avg":41.7,"memory_gb":3.91,"memory_percent":48.9,
                    "storage_gb":20.4,"network_egress_mb":1.82,"network_ingress_mb":0.44,"gpu_seconds":0},
         "period":{"start":1763726400,"end":1763726430}}
        """

    typealias Change = SchemaValidator.Change

    /// Changes to the example, by what they break; each must be rejected.
    static let wrong: [(String, Change)] = [
        ("cpu_seconds as a string", { $0[metric: "cpu_seconds"] = "12" }),
        ("cpu_seconds with a fraction", { $0[metric: "cpu_seconds"] = 12.5 }),
        ("gpu_seconds negative", { $0[metric: "gpu_seconds"] = -1 }),
        ("storage_gb negative", { $0[metric: "storage_gb"] = -0.5 }),
        ("memory_percent above 100", { $0[metric: "memory_percent"] = 100.5 }),
        ("a metric missing", { $0[metric: "network_egress_mb"] = nil }),
        ("an extra metric", { $0[metric: "disk_iops"] = 1 }),
        ("an extra top-level key", { $0["region"] = "eu-1" }),
        ("org_id missing", { $0["org_id"] = nil }),
        ("org_id a number", { $0["org_id"] = 7 }),
        ("event_id upper-case", { $0["event_id"] = "025E0578-EF92-562B-BA05-67DA19F411DD" }),
        ("event_id a version 4 UUID", { $0["event_id"] = "025e0578-ef92-462b-ba05-67da19f411dd" }),
        ("event_id of the wrong variant", { $0["event_id"] = "025e0578-ef92-562b-4a05-67da19f411dd" }),
        ("event_type wrong", { $0["event_type"] = "threshold" }),
        ("version 1.1", { $0["version"] = "1.1" }),
        ("timestamp in milliseconds as a string", { $0["timestamp"] = "1763726431000" }),
        ("timestamp negative", { $0["timestamp"] = -1 }),
        ("host_id empty", { $0["host_id"] = "" }),
        ("user_id null", { $0["user_id"] = NSNull() }),
        ("period.start a string", { $0["period"] = ["start": "1763726400", "end": 1_763_726_430] }),
        ("period with an extra key", { $0["period"] = ["start": 1_763_726_400, "end": 1_763_726_430, "length": 30] }),
        ("period.end missing", { $0["period"] = ["start": 1_763_726_400] }),
        ("metrics null", { $0["metrics"] = NSNull() }),
    ]

    /// Changes that are still valid: org_id set, and cpu_percent_avg above 100 (a clock step can
    /// make it so, and the schema deliberately does not cap it).
    static let stillValid: [(String, Change)] = [
        ("org_id set", { $0["org_id"] = "org-1" }),
        ("cpu_percent_avg above 100", { $0[metric: "cpu_percent_avg"] = 100.4 }),
        ("zero usage", { $0["metrics"] = Dictionary(uniqueKeysWithValues: metricNames.map { ($0, 0) }) }),
    ]

    static let metricNames = [
        "cpu_seconds", "cpu_percent_avg", "memory_gb", "memory_percent", "storage_gb", "network_egress_mb",
        "network_ingress_mb", "gpu_seconds",
    ]

    @Test func schemaRejectsWrongEventsAndAcceptsRightOnes() throws {
        let base = try #require(try JSONSerialization.jsonObject(with: Data(Self.example.utf8)) as? [String: Any])
        try SchemaValidator.expectVerdicts(base: base, stillValid: Self.stillValid, wrong: Self.wrong, schema: Self.schema)
    }

    /// UsageEvents 1.1 as `hostmeter sample --events --schema-version 1.1` prints them (the chain of
    /// its own in-memory outbox) against docs/schema/usage-event-1.1.json, and a signed commitment
    /// over them against docs/schema/usage-commitment-1.0.json.
    @Test func chainedEventsAndTheirCommitmentMatchTheirSchemas() throws {
        let result = try hostmeter("sample", "--events", "--periods", "2", "--schema-version", "1.1")
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let schema11 = TestPaths.file("docs/schema/usage-event-1.1.json")
        for (index, errors) in try SchemaValidator.validate(result.stdout, schema: schema11).enumerated() {
            #expect(errors.isEmpty, "event \(index) breaks the 1.1 schema: \(errors)")
        }
        let events = try JSONDecoder().decode([UsageEvent].self, from: result.stdout)
        #expect(events.map(\.seq) == [1, 2] && events[1].prevHash == events[0].hash)
        // 1.0's schema allows nothing more than 1.0 has.
        #expect(try SchemaValidator.validate(result.stdout, schema: Self.schema).allSatisfy { !$0.isEmpty })

        let commitment = try UsageCommitment.make(
            leaves: events.map { CommitmentLeaf(instanceID: $0.instanceID, seq: $0.seq!, hash: $0.hash!, period: $0.period) },
            after: CommitmentHead(seq: 4, hash: String(repeating: "a", count: 64), madeAt: 0), hostID: events[0].hostID,
            timestamp: events[1].period.end, identity: SigningIdentity.generate())
        let object = try #require(try JSONSerialization.jsonObject(with: Data(try commitment.wireJSON())) as? [String: Any])
        try SchemaValidator.expectVerdicts(
            base: object, stillValid: [("the first commitment", { $0["seq"] = 1; $0["prev_hash"] = NSNull() })],
            wrong: [
                ("a signature too short", { $0["signature"] = "AAAA" }),
                ("no ranges", { $0["ranges"] = [Any]() }),
                ("another algorithm", { $0["algorithm"] = "RSA" }),
                ("an extra member", { $0["region"] = "eu-1" }),
                ("root upper-case", { $0["root"] = ($0["root"] as! String).uppercased() }),
            ],
            schema: TestPaths.file("docs/schema/usage-commitment-1.0.json"))

        let gap = try MeteringGapEvent.chained(
            hostID: events[0].hostID, instanceID: events[0].instanceID, userID: "operator", orgID: nil, reason: "reboot",
            from: events[1].period.end, to: events[1].period.end + 40, detail: "boot a -> boot b",
            timestamp: events[1].period.end + 41, after: events[1].chainHead)
        let gapObject = try #require(try JSONSerialization.jsonObject(with: Data(try gap.wireJSON())) as? [String: Any])
        try SchemaValidator.expectVerdicts(
            base: gapObject, stillValid: [("an owner's organisation", { $0["org_id"] = "acme" })],
            wrong: [
                ("an unknown reason", { $0["reason"] = "cosmic_ray" }),
                ("no gap", { $0["gap"] = nil }),
                ("an extra member", { $0["period"] = ["start": 1, "end": 2] }),
            ],
            schema: TestPaths.file("docs/schema/metering-gap-1.0.json"))
    }
}

extension Dictionary where Key == String, Value == Any {
    /// The event's `metrics` member `name`, for changing one metric of an event.
    fileprivate subscript(metric name: String) -> Any? {
        get { (self["metrics"] as? [String: Any])?[name] }
        set {
            var metrics = self["metrics"] as? [String: Any] ?? [:]
            metrics[name] = newValue
            self["metrics"] = metrics
        }
    }
}
