public import Foundation
public import Outbox

/// What a CloudEvent's `subject` carries (`sink.subject`): the instance, or whom its usage is
/// billed to. OpenMeter meters usage by subject, so a consumer that bills users or organisations
/// wants their id there, not the VM's.
public enum CloudEventSubject: String, Sendable, CaseIterable {
    case instanceID = "instance_id"
    case userID = "user_id"
    case orgID = "org_id"

    /// An event without a value for the configured subject (no `org_id` while the sink sends
    /// organisations): it cannot be attributed, so the sink refuses it and the shipper
    /// dead-letters it with this as its reason, rather than sending it under another subject.
    public struct Missing: Error, CustomStringConvertible {
        public let eventID: String
        public let subject: CloudEventSubject
        public var description: String {
            "event \(eventID) has no \(subject.rawValue) for the CloudEvents subject (sink.subject: \(subject.rawValue))"
        }
    }

    /// The subject of `event`: its instance id, user or organisation from the outbox row (every
    /// event type carries `user_id` and `org_id`; the outbox keeps them beside the payload).
    public func value(for event: OutboxEvent) throws(Missing) -> String {
        let value: String?
        switch self {
        case .instanceID: value = event.instanceID
        case .userID: value = event.userID
        case .orgID: value = event.orgID
        }
        guard let value, !value.isEmpty else { throw Missing(eventID: event.eventID, subject: self) }
        return value
    }
}

/// What a sink reads from a stored event besides its outbox row: its schema version (the Kafka
/// sink's `schema-version` header).
struct EventFields: Decodable {
    let version: String?

    /// The event's schema version. The agent writes its events with sorted keys, and `version`
    /// sorts last among the keys of every event type, so the payload ends `,"version":"1.0"}`:
    /// read from there without decoding; anything else (another writer, an escape) is decoded.
    static func version(of event: OutboxEvent) -> String? {
        let bytes = event.payload
        let suffix = Array(#","version":""#.utf8)
        guard bytes.count > suffix.count + 3, bytes.last == UInt8(ascii: "}"),
            bytes[bytes.index(bytes.endIndex, offsetBy: -2)] == UInt8(ascii: "\"")
        else { return Self(of: event)?.version }
        let closing = bytes.index(bytes.endIndex, offsetBy: -2)
        var start = closing
        // The value: at most 32 bytes without a quote or backslash.
        while start > bytes.startIndex, bytes.distance(from: start, to: closing) <= 32 {
            let before = bytes[bytes.index(before: start)]
            if before == UInt8(ascii: "\"") { break }
            if before == UInt8(ascii: "\\") { return Self(of: event)?.version }
            start = bytes.index(before: start)
        }
        let keyStart = bytes.index(start, offsetBy: -suffix.count, limitedBy: bytes.startIndex) ?? bytes.startIndex
        guard bytes.distance(from: keyStart, to: start) == suffix.count, bytes[keyStart..<start].elementsEqual(suffix) else {
            return Self(of: event)?.version
        }
        return String(decoding: bytes[start..<closing], as: UTF8.self)
    }

    /// nil when the payload is not a JSON object.
    init?(of event: OutboxEvent) {
        guard let decoded = try? Self.decoder.decode(Self.self, from: event.payload) else { return nil }
        self = decoded
    }

    private static let decoder = JSONDecoder()
}
