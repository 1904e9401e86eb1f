import Foundation
import Testing
import TestSupport
import UsageModel

/// `JSONBytes` writes what `JSONEncoder` writes: usage events compared byte for byte on awkward
/// values, and the writer's own pieces.
@Suite struct JSONBytesTests {
    static let wireEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    @Test func usageEventsAreWrittenAsJSONEncoderWritesThem() throws {
        for seed in UInt64(0)..<3_000 {
            var values = AwkwardValues(seed: seed)
            let metrics = UsageMetrics(
                cpuSeconds: values.signed(), cpuPercentAvg: values.double(), memoryGB: values.double(),
                memoryPercent: values.double(), storageGB: values.double(), networkEgressMB: values.double(),
                networkIngressMB: values.double(), gpuSeconds: values.signed())
            var event = UsageEvent(
                hostID: values.string(), instanceID: values.string(), userID: values.string(),
                orgID: values.chance(0.5) ? values.string() : nil,
                period: Period(start: values.signed(), end: values.signed()), metrics: metrics,
                timestamp: values.signed())
            if values.chance(0.2) { event.version = values.string() }
            let expected = try Self.wireEncoder.encode(event)
            let written = try event.wireJSON()
            #expect(
                Data(written) == expected,
                "seed \(seed): \(String(decoding: written, as: UTF8.self)) ≠ \(String(decoding: expected, as: UTF8.self))")
            if Data(written) != expected { return }
        }
    }

    @Test func theEventEncoderShipsTheSameBytes() throws {
        let event = UsageEvent(
            hostID: "host/7", instanceID: "vm-\"42\"", userID: "u-9", orgID: nil, period: Period(start: 0, end: 30),
            metrics: UsageMetrics(cpuSeconds: 3, cpuPercentAvg: 12.5, memoryGB: 2), timestamp: 31)
        #expect(try UsageEventEncoder().encode(event) == Self.wireEncoder.encode(event))
        let text = String(decoding: try UsageEventEncoder().encode(event), as: UTF8.self)
        #expect(text.contains(#""host_id":"host/7""#))
        #expect(text.contains(#""org_id":null"#))
        #expect(text.contains(#""memory_gb":2,"#))
    }

    @Test func nonFiniteNumbersAreRefusedWithTheirKey() {
        var json = JSONBytes()
        json.beginObject()
        #expect(throws: JSONBytes.NonConformingFloat.self) { try json.member("cpu_capacity", Double.nan) }
        do {
            try json.member("gauge_seconds", -Double.infinity)
            Issue.record("an infinity was written")
        } catch {
            #expect(error.key == "gauge_seconds")
            #expect(error.description == "gauge_seconds: -inf is not representable in JSON")
        }
    }

    @Test func piecesNestAndSeparate() throws {
        var json = JSONBytes()
        json.beginObject()
        json.key("a")
        json.beginObject()
        json.endObject()
        json.member("b", Int64.min)
        json.member("c", nil as String?)
        json.member("d", UInt64.max)
        json.key("e")
        json.null()
        try json.member("f", 1e21)
        try json.member("g", -0.0)
        json.member("h", "\u{01}/\u{1F}")
        json.endObject()
        #expect(
            String(decoding: json.bytes, as: UTF8.self)
                == #"{"a":{},"b":-9223372036854775808,"d":18446744073709551615,"e":null,"f":1e+21,"g":-0,"h":"\u0001\/\u001f"}"#)
    }

    @Test func dynamicKeysSortByTheirBytes() {
        #expect(JSONBytes.sortedKeys(["b", "B", "a", "é", "aa", "Z", "_"]) == ["B", "Z", "_", "a", "aa", "b", "é"])
    }
}
