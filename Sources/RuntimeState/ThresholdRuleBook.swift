public import Foundation
public import Metering
public import Outbox
import Synchronization

/// Where the rules in effect come from.
public enum ThresholdRuleSource: String, Sendable, Encodable {
    /// `thresholds:` of the configuration file.
    case configuration
    /// The last `PUT /thresholds`, stored in the database.
    case api
}

/// The threshold rules in effect, shared by the API (which changes them) and the evaluator.
///
/// A set put over the API is stored in the database and wins over the configuration's until it is
/// deleted (`DELETE /thresholds`); the configuration's set (loaded at start and on SIGHUP) is in
/// effect whenever no API set is stored. So an operator's SIGHUP never silently undoes a change the
/// control plane made, and deleting the API set falls back to the file.
public final class ThresholdRuleBook: Sendable {
    private struct Rules {
        var configuration: [ThresholdRule]
        var api: [ThresholdRule]?
        var apiUpdatedAt: Double?
    }

    private let database: AgentDatabase?
    private let rules: Mutex<Rules>

    /// Loads the stored API set, if any. A stored set that no longer validates (written by another
    /// version) is an error naming the field, not silently dropped.
    public init(configuration: [ThresholdRule], database: AgentDatabase?) throws {
        self.database = database
        var state = Rules(configuration: configuration)
        if let stored = try database?.thresholdRules() {
            do {
                state.api = try ThresholdRule.decodeList(json: stored.json)
                state.apiUpdatedAt = stored.updatedAt
            } catch {
                throw OutboxError.failed(
                    path: database?.path ?? "", operation: "load threshold rules", reason: "stored rules: \(error)")
            }
        }
        rules = Mutex(state)
    }

    /// The rules in effect.
    public var effective: [ThresholdRule] { rules.withLock { $0.api ?? $0.configuration } }

    public var source: ThresholdRuleSource { rules.withLock { $0.api == nil ? .configuration : .api } }

    public var updatedAt: Double? { rules.withLock { $0.apiUpdatedAt } }

    /// The configuration's rules changed (start, SIGHUP).
    public func setConfiguration(_ configuration: [ThresholdRule]) {
        rules.withLock { $0.configuration = configuration }
    }

    /// Stores and puts in effect a validated set from the API.
    public func put(_ newRules: [ThresholdRule], now: Double) throws {
        try ThresholdRule.validate(newRules)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(newRules)
        try database?.storeThresholdRules(json: json, now: now)
        rules.withLock {
            $0.api = newRules
            $0.apiUpdatedAt = now
        }
    }

    /// Drops the API's set: the configuration's rules are in effect again.
    public func deleteAPIRules() throws {
        try database?.deleteThresholdRules()
        rules.withLock {
            $0.api = nil
            $0.apiUpdatedAt = nil
        }
    }
}
