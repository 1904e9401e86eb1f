import GRDB

/// Whether a write transaction's commit is fsynced before it returns.
///
/// In WAL mode `synchronous = FULL` syncs the log at every commit, so the transaction survives a
/// power cut; `NORMAL` syncs only at checkpoints, so the transaction survives a crash of the
/// process (kill -9: the log is in the kernel's page cache) but a power cut may take it back,
/// together with every later one and never an earlier one (the log is replayed in order up to
/// the last synced frame). A durable commit also makes every relaxed commit before it durable.
///
/// A write is relaxed only when losing it to a power cut bills nothing wrongly: see
/// docs/RELIABILITY.md, "Which writes are fsynced".
enum WriteDurability: Sendable {
    /// Fsynced: metering commits (events with their checkpoint), leases that count a first
    /// attempt, changes made over the API.
    case durable
    /// Not fsynced: acknowledgements, retry times, dead-lettering, pruning.
    case relaxed
    /// Decided on the writer connection just before the transaction begins.
    case durableIf(@Sendable (Database) throws -> Bool)

    func isDurable(_ db: Database) throws -> Bool {
        switch self {
        case .durable: true
        case .relaxed: false
        case .durableIf(let decide): try decide(db)
        }
    }
}
