public import GRDB
import Synchronization

/// The SQL statements one GRDB connection runs, collected for tests that check what a component
/// asks of the database (how often, how durably).
public final class StatementLog: Sendable {
    private let statements = Mutex<[String]>([])

    public init() {}

    /// Starts collecting the statements of `writer`'s writer connection (where every write runs).
    public func follow(_ writer: any DatabaseWriter) throws {
        try writer.writeWithoutTransaction { db in
            db.trace { [self] event in
                if case .statement(let statement) = event { record(statement.sql) }
            }
        }
    }

    func record(_ sql: String) {
        statements.withLock { $0.append(sql) }
    }

    /// Everything collected so far, in order.
    public var all: [String] { statements.withLock { $0 } }

    /// Forgets what was collected.
    public func clear() {
        statements.withLock { $0.removeAll() }
    }
}
