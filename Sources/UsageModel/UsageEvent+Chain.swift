import Crypto
public import Foundation

/// The last event of an instance's chain: what the next event's `seq` and `prev_hash` follow.
public struct ChainHead: Sendable, Equatable, Hashable {
    public var seq: Int64
    public var hash: String

    public init(seq: Int64, hash: String) {
        self.seq = seq
        self.hash = hash
    }
}

extension UsageEvent {
    /// This event as UsageEvent 1.1, next in its instance's chain after `head` (nil: the first):
    /// `seq` one more than the head's (1 for the first), `prev_hash` the head's hash, and its own
    /// `hash`.
    public func chained(after head: ChainHead?) throws(CanonicalJSON.Unrepresentable) -> UsageEvent {
        var event = self
        event.version = UsageSchemaVersion.v1_1.rawValue
        event.seq = (head?.seq ?? 0) + 1
        event.prevHash = head?.hash
        event.hash = nil
        event.hash = try event.chainHash()
        return event
    }

    /// The chain head this event makes, when it is chained.
    public var chainHead: ChainHead? {
        guard let seq, let hash else { return nil }
        return ChainHead(seq: seq, hash: hash)
    }

    /// The lower-case hex SHA-256 of the event's RFC 8785 canonical JSON without `hash`: what a
    /// verifier gets from the delivered JSON object by removing `hash` and canonicalizing the rest.
    public func chainHash() throws(CanonicalJSON.Unrepresentable) -> String {
        Self.hexSHA256(try canonicalValue(includingHash: false).canonicalBytes())
    }

    /// The event as a JSON value, exactly the members its wire JSON has (`hash` only if asked).
    public func canonicalValue(includingHash: Bool) -> CanonicalJSON {
        var members: [String: CanonicalJSON] = [
            "event_id": .string(eventID),
            "event_type": .string(eventType),
            "host_id": .string(hostID),
            "instance_id": .string(instanceID),
            "metrics": .object([
                "cpu_percent_avg": .number(metrics.cpuPercentAvg),
                "cpu_seconds": .number(Double(metrics.cpuSeconds)),
                "gpu_seconds": .number(Double(metrics.gpuSeconds)),
                "memory_gb": .number(metrics.memoryGB),
                "memory_percent": .number(metrics.memoryPercent),
                "network_egress_mb": .number(metrics.networkEgressMB),
                "network_ingress_mb": .number(metrics.networkIngressMB),
                "storage_gb": .number(metrics.storageGB),
            ]),
            "org_id": orgID.map(CanonicalJSON.string) ?? .null,
            "period": .object(["end": .number(Double(period.end)), "start": .number(Double(period.start))]),
            "timestamp": .number(Double(timestamp)),
            "user_id": .string(userID),
            "version": .string(version),
        ]
        if let seq {
            members["seq"] = .number(Double(seq))
            members["prev_hash"] = prevHash.map(CanonicalJSON.string) ?? .null
            if includingHash, let hash { members["hash"] = .string(hash) }
        }
        return .object(members)
    }

    /// Lower-case hex of the SHA-256 of `bytes`.
    public static func hexSHA256(_ bytes: some DataProtocol) -> String {
        let hexDigits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in SHA256.hash(data: bytes) {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
