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

    /// The subject of `event`: its instance id from the outbox row, or the user or organisation
    /// read from the stored event (every event type carries `user_id` and `org_id`).
    public func value(for event: OutboxEvent) throws(Missing) -> String {
        let value: String?
        switch self {
        case .instanceID: value = event.instanceID
        case .userID: value = EventFields(of: event)?.userID
        case .orgID: value = EventFields(of: event)?.orgID
        }
        guard let value, !value.isEmpty else { throw Missing(eventID: event.eventID, subject: self) }
        return value
    }
}

/// What a sink reads from a stored event besides its outbox row: whom its usage is billed to
/// (every event type carries `user_id` and `org_id`, either may be absent) and its schema version.
struct EventFields: Decodable {
    let userID: String?
    let orgID: String?
    let version: String?

    enum CodingKeys: String, CodingKey {
        case userID = "user_id", orgID = "org_id", version
    }

    /// nil when the payload is not a JSON object.
    init?(of event: OutboxEvent) {
        guard let decoded = try? Self.decoder.decode(Self.self, from: event.payload) else { return nil }
        self = decoded
    }

    private static let decoder = JSONDecoder()
}
