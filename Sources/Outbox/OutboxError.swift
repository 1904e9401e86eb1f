/// Why the agent's database could not be used. Every case names the file.
public enum OutboxError: Error, Sendable, CustomStringConvertible {
    /// The file could not be opened or migrated: missing directory, no permission, not a database,
    /// corrupt, or locked by another process past the busy timeout.
    case cannotOpen(path: String, reason: String)
    /// A read or write failed after opening (disk full, I/O error, constraint).
    case failed(path: String, operation: String, reason: String)
    /// The database is over `outbox.max_bytes` and merging old pending events freed too little.
    case full(path: String, usedBytes: Int, maxBytes: Int)
    /// A stored checkpoint is of a format this agent does not read.
    case unknownCheckpointFormat(path: String, instanceID: String, format: Int)
    /// The file was written by a newer hostmeter: its schema version (migrations applied, or the
    /// stored `user_version`) is above this build's, or it has migrations this build does not know.
    case newerSchema(path: String, version: Int, ours: Int, unknownMigrations: [String])

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            return "cannot open database \(path): \(reason)"
        case .failed(let path, let operation, let reason):
            return "database \(path): \(operation) failed: \(reason)"
        case .full(let path, let usedBytes, let maxBytes):
            return "database \(path) is full: \(usedBytes) bytes in use, bound \(maxBytes) (outbox.max_bytes); "
                + "new periods wait until the consumer takes events"
        case .unknownCheckpointFormat(let path, let instanceID, let format):
            return "database \(path): checkpoint of \(instanceID) has unknown format \(format)"
        case .newerSchema(let path, let version, let ours, let unknown):
            let names = unknown.isEmpty ? "" : " (migrations it has and this build does not know: "
                + unknown.map { "\"\($0)\"" }.joined(separator: ", ") + ")"
            return "cannot open database \(path): it has schema version \(version) and this build's is \(ours)\(names); "
                + "it was written by a newer hostmeter, which this one could misread or damage: run that version or a "
                + "newer one"
        }
    }

    /// Whether this is the outbox being at its bound (as opposed to the database failing).
    public var isFull: Bool {
        if case .full = self { return true }
        return false
    }
}
