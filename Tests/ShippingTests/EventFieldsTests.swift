import Foundation
import Outbox
import Testing
import UsageModel

@testable import Shipping

/// `EventFields.version(of:)` reads the schema version off the end of the agent's own payloads and
/// decodes anything else: it always agrees with decoding.
@Suite struct EventFieldsTests {
    func row(_ payload: Data) -> OutboxEvent {
        OutboxEvent(eventID: "e", eventType: "t", instanceID: "i", periodStart: 0, periodEnd: 1, payload: payload)
    }

    @Test func theAgentsOwnEventsAreReadOffTheirEnd() throws {
        let usage = UsageEvent(
            hostID: "h", instanceID: "vm-1", userID: "u", orgID: "o", period: Period(start: 0, end: 30),
            metrics: UsageMetrics(cpuSeconds: 3), timestamp: 30)
        let threshold = ThresholdEvent(
            hostID: "h", instanceID: "vm-1", userID: "u", orgID: nil, state: .firing, rule: "r", severity: "warning",
            metric: "cpu_percent_avg", op: ">", value: 95, threshold: 90, labels: ["version": "9.9", "team": "a\"b"],
            period: Period(start: 0, end: 30), timestamp: 30)
        for payload in [try UsageEventEncoder().encode(usage), try ThresholdEventEncoder().encode(threshold)] {
            #expect(payload.suffix(17) == Data(#","version":"1.0"}"#.utf8))
            #expect(EventFields.version(of: row(payload)) == "1.0")
        }
    }

    @Test(arguments: [
        (#"{"version":"1.0"}"#, "1.0"),  // no comma before: decoded
        (#"{"a":1,"version":"2.0"}"#, "2.0"),
        (#"{"version":"1.1","labels":{"version":"x"}}"#, "1.1"),  // nested last: decoded
        (#"{"a":"x,\"version\":\"3\"","version":"4"}"#, "4"),
        (#"{"a":1,"version":"a\"b"}"#, "a\"b"),  // an escape: decoded
        (#"{"a":1,"version":"\#(String(repeating: "v", count: 40))"}"#, String(repeating: "v", count: 40)),
        (#"{"a":1}"#, nil),
        ("not json", nil),
    ])
    func anythingElseIsDecoded(payload: String, version: String?) {
        #expect(EventFields.version(of: row(Data(payload.utf8))) == version)
        #expect(EventFields(of: row(Data(payload.utf8)))?.version == version)
    }
}
