public import Foundation

/// The UsageEvent wire versions this agent can emit (`schema_version` in the configuration).
///
/// Adding an optional field is a minor version (1.1), anything else a major one. A new version gets
/// a case here and a branch in `UsageEventEncoder.encode(_:)`; the JSON Schema for each version lives
/// in docs/schema/usage-event-<version>.json.
public enum UsageSchemaVersion: String, Sendable, CaseIterable, Codable {
    case v1_0 = "1.0"

    public static let current = UsageSchemaVersion.v1_0
}

/// Turns events into the bytes of the configured wire version.
public struct UsageEventEncoder: Sendable {
    public let version: UsageSchemaVersion

    public init(version: UsageSchemaVersion = .current) { self.version = version }

    public func encode(_ event: UsageEvent) throws -> Data {
        var event = event
        event.version = version.rawValue
        switch version {
        case .v1_0:
            // A version 1.1 would encode a `UsageEventV1_1` view here, with its extra optional fields.
            return try Self.jsonEncoder.encode(event)
        }
    }

    private static let jsonEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
