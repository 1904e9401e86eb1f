public import Crypto
public import Foundation
public import Outbox
import UsageModel

/// Request bodies for the HTTP sinks, built from the payload bytes the outbox stored: events are
/// shipped exactly as they were encoded when their period closed.
public enum BatchEncoder {
    /// A JSON array of the events.
    public static func jsonArray(_ batch: [OutboxEvent]) -> Data {
        var body = Data("[".utf8)
        for (index, event) in batch.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(event.payload)
        }
        body.append(UInt8(ascii: "]"))
        return body
    }

    /// A CloudEvents 1.0 structured batch (`application/cloudevents-batch+json`), as OpenMeter's
    /// ingest takes it: id = event_id, source = hostmeter://<host_id>, a versioned type, subject =
    /// the instance, user or organisation (`subject`), time = the period's end in RFC 3339, data =
    /// the event. A usage commitment is about the host, not one instance or owner: its subject is
    /// the host id. Throws for the first other event without a value for `subject`.
    public static func cloudEventsBatch(
        _ batch: [OutboxEvent], hostID: String, subject: CloudEventSubject = .instanceID
    ) throws(CloudEventSubject.Missing) -> Data {
        let source = jsonString("hostmeter://\(hostID)")
        var body = Data("[".utf8)
        for (index, event) in batch.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            var envelope = "{\"specversion\":\"1.0\",\"id\":\(jsonString(event.eventID)),\"source\":\(source)"
            envelope += ",\"type\":\(jsonString(cloudEventType(event.eventType)))"
            let about = event.eventType == UsageCommitment.eventType ? hostID : try subject.value(for: event)
            envelope += ",\"subject\":\(jsonString(about))"
            envelope += ",\"time\":\(jsonString(rfc3339(event.periodEnd)))"
            envelope += ",\"datacontenttype\":\"application/json\",\"data\":"
            body.append(contentsOf: envelope.utf8)
            body.append(event.payload)
            body.append(UInt8(ascii: "}"))
        }
        body.append(UInt8(ascii: "]"))
        return body
    }

    /// `io.hostmeter.usage.v1` for usage events; the major version of the wire format is in the type,
    /// so a consumer can route v2 elsewhere.
    public static func cloudEventType(_ eventType: String) -> String {
        switch eventType {
        case "resource_usage": "io.hostmeter.usage.v1"
        case "threshold_alert": "io.hostmeter.threshold.v1"
        case "usage_commitment": "io.hostmeter.commitment.v1"
        case "metering_gap": "io.hostmeter.gap.v1"
        default: "io.hostmeter.\(eventType).v1"
        }
    }

    /// A stable key for a batch: SHA-256 of its event ids, so a resent batch carries the same
    /// `Idempotency-Key` as the first attempt.
    public static func idempotencyKey(_ batch: [OutboxEvent]) -> String {
        var hasher = SHA256()
        for event in batch {
            hasher.update(data: Array(event.eventID.utf8))
            hasher.update(data: [0x0A])
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func rfc3339(_ unixSeconds: Int64) -> String {
        // "2026-11-21T13:00:00Z": RFC 3339 in UTC.
        Date(timeIntervalSince1970: TimeInterval(unixSeconds)).ISO8601Format()
    }

    static func jsonString(_ value: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .withoutEscapingSlashes])) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
