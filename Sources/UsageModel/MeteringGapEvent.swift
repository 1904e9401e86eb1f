public import Foundation

/// A hole in an instance's accounting as a consumer sees it (`metering_gap` 1.0,
/// docs/schema/metering-gap-1.0.json): shipped with UsageEvents 1.1, in the instance's hash chain,
/// so that a consumer can tell a reboot or a stopped VM from lost data. `reason` is `reboot`
/// (counters began again: usage between `gap.from` and `gap.to` is unknowable),
/// `instance_stopped` (nothing ran: no periods between) or `counter_reset` (one counter's object
/// was recreated between two samples; the periods still tile and the others are billed).
public struct MeteringGapEvent: Sendable, Equatable {
    public static let eventType = "metering_gap"
    public static let version = "1.0"

    public var eventID: String
    public var hostID: String
    public var instanceID: String
    public var userID: String
    public var orgID: String?
    public var reason: String
    /// Unix seconds: where the hole starts and ends.
    public var from: Int64
    public var to: Int64
    /// The old and new boot ids, or the counter and its two values.
    public var detail: String
    public var timestamp: Int64
    public var seq: Int64
    public var prevHash: String?
    public var hash: String

    /// The gap, next in its instance's chain after `head`.
    public static func chained(
        hostID: String, instanceID: String, userID: String, orgID: String?, reason: String, from: Int64, to: Int64,
        detail: String, timestamp: Int64, after head: ChainHead?
    ) throws(CanonicalJSON.Unrepresentable) -> MeteringGapEvent {
        var gap = MeteringGapEvent(
            eventID: NameBasedUUID.v5(name: "\(eventType)\n\(hostID)\n\(instanceID)\n\(reason)\n\(from)\n\(to)"),
            hostID: hostID, instanceID: instanceID, userID: userID, orgID: orgID, reason: reason, from: from, to: to,
            detail: detail, timestamp: timestamp, seq: (head?.seq ?? 0) + 1, prevHash: head?.hash, hash: "")
        gap.hash = UsageEvent.hexSHA256(try gap.canonicalValue(includingHash: false).canonicalBytes())
        return gap
    }

    public var chainHead: ChainHead { ChainHead(seq: seq, hash: hash) }

    public func canonicalValue(includingHash: Bool) -> CanonicalJSON {
        var members: [String: CanonicalJSON] = [
            "detail": .string(detail),
            "event_id": .string(eventID),
            "event_type": .string(Self.eventType),
            "gap": .object(["from": .number(Double(from)), "to": .number(Double(to))]),
            "host_id": .string(hostID),
            "instance_id": .string(instanceID),
            "org_id": orgID.map(CanonicalJSON.string) ?? .null,
            "prev_hash": prevHash.map(CanonicalJSON.string) ?? .null,
            "reason": .string(reason),
            "seq": .number(Double(seq)),
            "timestamp": .number(Double(timestamp)),
            "user_id": .string(userID),
            "version": .string(Self.version),
        ]
        if includingHash { members["hash"] = .string(hash) }
        return .object(members)
    }

    /// The wire bytes: the canonical form, `hash` included.
    public func wireJSON() throws(CanonicalJSON.Unrepresentable) -> [UInt8] {
        try canonicalValue(includingHash: true).canonicalBytes()
    }
}
