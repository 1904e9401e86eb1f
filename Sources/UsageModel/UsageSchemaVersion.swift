/// The UsageEvent wire versions this agent can emit (`schema_version` in the configuration).
///
/// Adding an optional field is a minor version (1.1), anything else a major one. A new version gets
/// a case here and a branch in `UsageEventEncoder.encode(_:)`; the JSON Schema for each version lives
/// in docs/schema/usage-event-<version>.json.
public enum UsageSchemaVersion: String, Sendable, CaseIterable, Codable {
    case v1_0 = "1.0"
    /// 1.0 and, additively, the instance's hash chain: `seq`, `prev_hash`, `hash`
    /// (docs/schema/usage-event-1.1.json).
    case v1_1 = "1.1"

    public static let current = UsageSchemaVersion.v1_0
}
