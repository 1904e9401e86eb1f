import GRDB

extension AgentDatabase {
    /// Removes the gaps and baselines, recorded before `cutoff` (unix seconds), that no undelivered
    /// usage needs any more; returns how many rows went.
    ///
    /// Gaps and baselines are audit records: they explain a hole in an instance's periods and where
    /// its counting (re)started, and nothing is billed from them. They take room under
    /// `outbox.max_bytes` like events, so VMs coming and going would grow the outbox without bound.
    /// An instance's undelivered usage is its pending events and dead letters; U is the earliest
    /// period start among them (none: everything it produced was delivered). Then:
    ///
    /// - a gap goes when it ends before U: the periods on both of its sides were delivered;
    /// - a baseline superseded by the instance's next one goes when that next one starts no later
    ///   than U: all usage counted from it was delivered;
    /// - an instance's latest baseline goes only when the instance has no checkpoint (it was
    ///   removed, its final period stored with the checkpoint's removal) and nothing undelivered.
    ///
    /// Everything else stays, whatever its age: undelivered usage keeps its audit trail, a metered
    /// instance keeps the baseline its counting runs from.
    @discardableResult
    public func pruneAuditRecords(recordedBefore cutoff: Int64) throws(OutboxError) -> Int {
        try write("prune audit records", durability: .relaxed) { db in
            // The earliest undelivered period start of each instance with undelivered usage.
            let undelivered = """
                SELECT instance_id, MIN(period_start) AS oldest FROM (
                    SELECT instance_id, period_start FROM events
                    UNION ALL SELECT instance_id, period_start FROM dead_letters)
                GROUP BY instance_id
                """
            try db.execute(
                sql: """
                    DELETE FROM metering_gaps WHERE id IN (
                        SELECT g.id FROM metering_gaps g
                        LEFT JOIN (\(undelivered)) u ON u.instance_id = g.instance_id
                        WHERE g.recorded_at < ? AND (u.oldest IS NULL OR g.to_time < u.oldest))
                    """,
                arguments: [cutoff])
            var pruned = db.changesCount
            try db.execute(
                sql: """
                    DELETE FROM metering_baselines WHERE id IN (
                        SELECT b.id FROM (
                            SELECT id, instance_id, recorded_at,
                                   LEAD(wall_ns) OVER (PARTITION BY instance_id ORDER BY id) AS next_ns
                            FROM metering_baselines) b
                        LEFT JOIN (\(undelivered)) u ON u.instance_id = b.instance_id
                        WHERE b.recorded_at < ? AND (
                            (b.next_ns IS NOT NULL AND (u.oldest IS NULL OR b.next_ns <= u.oldest * 1000000000))
                            OR (b.next_ns IS NULL AND u.oldest IS NULL
                                AND b.instance_id NOT IN (SELECT instance_id FROM checkpoints))))
                    """,
                arguments: [cutoff])
            pruned += db.changesCount
            return pruned
        }
    }
}
