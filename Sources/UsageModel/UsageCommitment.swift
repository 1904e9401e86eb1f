public import Foundation

/// One chained event a commitment covers: its instance, place and hash.
public struct CommitmentLeaf: Sendable, Equatable, Hashable {
    public var instanceID: String
    public var seq: Int64
    /// The event's `hash` (lower-case hex).
    public var hash: String
    public var period: Period

    public init(instanceID: String, seq: Int64, hash: String, period: Period) {
        self.instanceID = instanceID
        self.seq = seq
        self.hash = hash
        self.period = period
    }

    /// Leaves in a commitment's order: by instance id (as UTF-8 bytes), then seq.
    public static func ordered(_ leaves: [CommitmentLeaf]) -> [CommitmentLeaf] {
        leaves.sorted {
            $0.instanceID == $1.instanceID ? $0.seq < $1.seq : $0.instanceID.utf8.lexicographicallyPrecedes($1.instanceID.utf8)
        }
    }

    /// The 32 bytes of `hash`; nil when it is not 64 hex digits.
    public var hashBytes: Data? { Self.bytes(hex: hash) }

    static func bytes(hex: String) -> Data? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var data = Data(capacity: digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            data.append(high << 4 | low)
            index += 2
        }
        return data
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}

/// The head of a host's chain of commitments: what the next commitment's `seq` and `prev_hash`
/// follow, and when it was made.
public struct CommitmentHead: Sendable, Equatable {
    public var seq: Int64
    public var hash: String
    public var madeAt: Int64

    public init(seq: Int64, hash: String, madeAt: Int64) {
        self.seq = seq
        self.hash = hash
        self.madeAt = madeAt
    }
}

/// A signed usage commitment (`usage_commitment` 1.0, docs/schema/usage-commitment-1.0.json): the
/// RFC 9162 Merkle root over the hashes of the chained events the agent made since its previous
/// commitment, the seq range it covers per instance, the previous commitment's hash, and the
/// agent's Ed25519 signature. Commitments chain per host like events per instance.
///
/// `hash` is the hex SHA-256, and `signature` the base64 Ed25519 signature, of the commitment's
/// RFC 8785 form without `hash` and `signature`.
public struct UsageCommitment: Sendable, Equatable, Decodable {
    public static let eventType = "usage_commitment"
    public static let version = "1.0"

    public struct Range: Sendable, Equatable, Decodable {
        public var instanceID: String
        public var firstSeq: Int64
        public var lastSeq: Int64

        enum CodingKeys: String, CodingKey {
            case instanceID = "instance_id", firstSeq = "first_seq", lastSeq = "last_seq"
        }
    }

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id", hostID = "host_id", seq, prevHash = "prev_hash", timestamp, keyID = "key_id"
        case treeSize = "tree_size", root, ranges, period, hash, signature
    }

    public var eventID: String
    public var hostID: String
    public var seq: Int64
    public var prevHash: String?
    public var timestamp: Int64
    public var keyID: String
    public var treeSize: Int
    /// Lower-case hex of the Merkle root.
    public var root: String
    public var ranges: [Range]
    /// From the first covered period's start to the last one's end.
    public var period: Period
    public var hash: String
    public var signature: String

    /// The commitment over `leaves` (none of them may be empty), after `head`, signed by `identity`.
    public static func make(
        leaves: [CommitmentLeaf], after head: CommitmentHead?, hostID: String, timestamp: Int64, identity: SigningIdentity
    ) throws(CanonicalJSON.Unrepresentable) -> UsageCommitment {
        let ordered = CommitmentLeaf.ordered(leaves)
        var ranges: [Range] = []
        for leaf in ordered {
            if let last = ranges.last, last.instanceID == leaf.instanceID {
                ranges[ranges.count - 1].lastSeq = leaf.seq
            } else {
                ranges.append(Range(instanceID: leaf.instanceID, firstSeq: leaf.seq, lastSeq: leaf.seq))
            }
        }
        let seq = (head?.seq ?? 0) + 1
        var commitment = UsageCommitment(
            eventID: NameBasedUUID.v5(name: "\(eventType)\n\(hostID)\n\(seq)"), hostID: hostID, seq: seq,
            prevHash: head?.hash, timestamp: timestamp, keyID: identity.publicIdentity.keyID, treeSize: ordered.count,
            root: hex(MerkleTree.root(ordered.map { $0.hashBytes ?? Data($0.hash.utf8) })),
            ranges: ranges,
            period: Period(
                start: ordered.map(\.period.start).min() ?? timestamp, end: ordered.map(\.period.end).max() ?? timestamp),
            hash: "", signature: "")
        let signed = try commitment.canonicalValue(includingSeal: false).canonicalBytes()
        commitment.hash = UsageEvent.hexSHA256(signed)
        commitment.signature = identity.signature(of: signed).base64EncodedString()
        return commitment
    }

    /// The head this commitment makes.
    public var head: CommitmentHead { CommitmentHead(seq: seq, hash: hash, madeAt: timestamp) }

    /// The commitment as a JSON value; `includingSeal`: with `hash` and `signature`.
    public func canonicalValue(includingSeal: Bool) -> CanonicalJSON {
        var members: [String: CanonicalJSON] = [
            "algorithm": .string(PublicIdentity.algorithm),
            "event_id": .string(eventID),
            "event_type": .string(Self.eventType),
            "host_id": .string(hostID),
            "key_id": .string(keyID),
            "period": .object(["end": .number(Double(period.end)), "start": .number(Double(period.start))]),
            "prev_hash": prevHash.map(CanonicalJSON.string) ?? .null,
            "ranges": .array(
                ranges.map {
                    .object([
                        "first_seq": .number(Double($0.firstSeq)), "instance_id": .string($0.instanceID),
                        "last_seq": .number(Double($0.lastSeq)),
                    ])
                }),
            "root": .string(root),
            "seq": .number(Double(seq)),
            "timestamp": .number(Double(timestamp)),
            "tree_size": .number(Double(treeSize)),
            "version": .string(Self.version),
        ]
        if includingSeal {
            members["hash"] = .string(hash)
            members["signature"] = .string(signature)
        }
        return .object(members)
    }

    /// The wire bytes: the canonical form with `hash` and `signature`.
    public func wireJSON() throws(CanonicalJSON.Unrepresentable) -> [UInt8] {
        try canonicalValue(includingSeal: true).canonicalBytes()
    }

    static func hex(_ data: Data) -> String { lowerHex(data) }
}
