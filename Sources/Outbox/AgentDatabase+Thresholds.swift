public import Foundation
import GRDB

/// The threshold rules set over the API, as the JSON array the API accepted.
public struct StoredThresholdRules: Sendable, Equatable {
    public var json: Data
    /// Unix seconds of the last change.
    public var updatedAt: Double
}

extension AgentDatabase {
    /// The rule set last stored with `storeThresholdRules`, or nil if none ever was.
    public func thresholdRules() throws(OutboxError) -> StoredThresholdRules? {
        try read("read threshold rules") { db in
            try Row.fetchOne(db, sql: "SELECT rules, updated_at FROM threshold_rules WHERE id = 1").map {
                StoredThresholdRules(json: Data(($0["rules"] as String).utf8), updatedAt: $0["updated_at"])
            }
        }
    }

    /// Replaces the stored rule set (already validated by the caller). The evaluation state of
    /// removed rules stays until the evaluator resolves and drops it with the next period.
    public func storeThresholdRules(json: Data, now: Double) throws(OutboxError) {
        try write("store threshold rules") { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO threshold_rules (id, rules, updated_at) VALUES (1, ?, ?)",
                arguments: [String(decoding: json, as: UTF8.self), now])
        }
    }

    /// Forgets the rule set stored over the API.
    public func deleteThresholdRules() throws(OutboxError) {
        try write("delete threshold rules") { db in
            try db.execute(sql: "DELETE FROM threshold_rules")
        }
    }

    /// The threshold evaluation states stored with the last step.
    public func thresholdStates() throws(OutboxError) -> [ThresholdStateRecord] {
        try read("read threshold state") { db in
            try Row.fetchAll(db, sql: "SELECT rule, instance_id, state FROM threshold_state ORDER BY rule, instance_id").map {
                ThresholdStateRecord(rule: $0["rule"], instanceID: $0["instance_id"], state: Data(($0["state"] as String).utf8))
            }
        }
    }
}
