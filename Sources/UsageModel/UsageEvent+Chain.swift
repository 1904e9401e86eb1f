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
        Self.hexSHA256(try canonicalBytes(includingHash: false))
    }

    /// `canonicalValue(includingHash:).canonicalBytes()`, written straight into bytes: the members'
    /// names are fixed and ASCII, so their RFC 8785 order (UTF-16 code units) is the order below.
    /// A tenth of the cost of building the value and sorting it (`UsageEventChainTests` holds the
    /// two equal on generated events).
    public func canonicalBytes(includingHash: Bool) throws(CanonicalJSON.Unrepresentable) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(640)
        /// `"name":` after a comma unless the member opens its object.
        func name(_ text: StaticString, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        func text(_ key: StaticString, _ value: String?, first: Bool = false) {
            name(key, first: first)
            if let value { CanonicalJSON.writeString(value, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        func number(_ key: StaticString, _ value: Double, first: Bool = false) throws(CanonicalJSON.Unrepresentable) {
            name(key, first: first)
            out.append(contentsOf: try CanonicalJSON.numberText(value).utf8)
        }
        out.append(UInt8(ascii: "{"))
        text("event_id", eventID, first: true)
        text("event_type", eventType)
        if seq != nil, includingHash, let hash { text("hash", hash) }
        text("host_id", hostID)
        text("instance_id", instanceID)
        name("metrics")
        out.append(UInt8(ascii: "{"))
        try number("cpu_percent_avg", metrics.cpuPercentAvg, first: true)
        try number("cpu_seconds", Double(metrics.cpuSeconds))
        try number("gpu_seconds", Double(metrics.gpuSeconds))
        try number("memory_gb", metrics.memoryGB)
        try number("memory_percent", metrics.memoryPercent)
        try number("network_egress_mb", metrics.networkEgressMB)
        try number("network_ingress_mb", metrics.networkIngressMB)
        try number("storage_gb", metrics.storageGB)
        out.append(UInt8(ascii: "}"))
        text("org_id", orgID)
        name("period")
        out.append(UInt8(ascii: "{"))
        try number("end", Double(period.end), first: true)
        try number("start", Double(period.start))
        out.append(UInt8(ascii: "}"))
        if let seq {
            text("prev_hash", prevHash)
            try number("seq", Double(seq))
        }
        try number("timestamp", Double(timestamp))
        text("user_id", userID)
        text("version", version)
        out.append(UInt8(ascii: "}"))
        return out
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
        lowerHex(SHA256.hash(data: bytes))
    }
}

/// `bytes` as lower-case hex, two digits a byte: how chains and commitments write hashes.
func lowerHex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    text.reserveCapacity(64)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: text, as: UTF8.self)
}
