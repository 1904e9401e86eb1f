public import Foundation
import GRDB

/// An instance manifest registered with `PUT /instances/{id}`, as the JSON the API accepted.
public struct StoredInstance: Sendable, Equatable {
    public var instanceID: String
    public var manifest: Data
    /// Unix seconds of the last change.
    public var updatedAt: Double

    public init(instanceID: String, manifest: Data, updatedAt: Double) {
        self.instanceID = instanceID
        self.manifest = manifest
        self.updatedAt = updatedAt
    }
}

extension AgentDatabase {
    /// Every instance registered over the API, by id.
    public func storedInstances() throws(OutboxError) -> [StoredInstance] {
        try read("read instances") { db in
            try Row.fetchAll(db, sql: "SELECT instance_id, manifest, updated_at FROM instances ORDER BY instance_id").map {
                StoredInstance(
                    instanceID: $0["instance_id"], manifest: Data(($0["manifest"] as String).utf8),
                    updatedAt: $0["updated_at"])
            }
        }
    }

    /// Registers or replaces one instance (validated by the caller).
    public func storeInstance(_ instance: StoredInstance) throws(OutboxError) {
        try write("store instance") { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO instances (instance_id, manifest, updated_at) VALUES (?, ?, ?)",
                arguments: [instance.instanceID, String(decoding: instance.manifest, as: UTF8.self), instance.updatedAt])
        }
    }

    /// Forgets one instance registered over the API; false if there was none. Its checkpoint stays
    /// until the recorder bills its final period and deletes it in the same transaction.
    @discardableResult
    public func deleteInstance(_ instanceID: String) throws(OutboxError) -> Bool {
        try write("delete instance") { db in
            try db.execute(sql: "DELETE FROM instances WHERE instance_id = ?", arguments: [instanceID])
            return db.changesCount > 0
        }
    }
}
