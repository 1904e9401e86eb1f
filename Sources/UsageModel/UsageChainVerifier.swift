public import Foundation

/// Checks delivered UsageEvents 1.1 without trusting the agent that made them: each event's hash
/// against its content, and per chain (a host's instance) that seq runs without a hole, that each
/// event's `prev_hash` is the hash of the one before, and that the periods tile.
///
/// Events are added one JSON object at a time, in any order and any number of times (a consumer
/// that stored a resent event twice holds it twice: an identical copy is counted, not refused);
/// `report()` checks the chains once everything is in.
public struct UsageChainVerifier {
    /// Something wrong, and where it was found.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// What is wrong, as a word a program can compare.
        public enum Kind: String, Sendable {
            case notJSON = "not_json", notAnEvent = "not_an_event", unchained, changed, fork, missing, broken, overlap, hole
            case notFromStart = "not_from_start"
            /// About commitments: a signature that does not verify (or by another key), a root that
            /// is not the covered events', a covered event that is not here, a commitment missing
            /// from its host's chain of them or linked to the wrong one, an event covered twice.
            case badSignature = "bad_signature", rootMismatch = "root_mismatch", uncovered
            case commitmentMissing = "commitment_missing", commitmentBroken = "commitment_broken", coveredTwice = "covered_twice"
        }

        public var kind: Kind
        /// "FILE:LINE" (with "#N" for the Nth object of a batch on that line).
        public var location: String
        public var eventID: String?
        public var hostID: String?
        public var instanceID: String?
        public var seq: Int64?
        public var reason: String

        public var description: String {
            var about: [String] = []
            if let eventID { about.append("event \(eventID)") }
            if let hostID { about.append("host \(hostID)") }
            if let instanceID { about.append("instance \(instanceID)") }
            if let seq { about.append("seq \(seq)") }
            return "\(location): " + (about.isEmpty ? "" : about.joined(separator: ", ") + ": ") + reason
        }
    }

    /// One chain as verified: a host's instance.
    public struct Chain: Sendable, Equatable {
        public var hostID: String
        public var instanceID: String
        public var firstSeq: Int64
        public var lastSeq: Int64
        /// The hash of the last event: what the next delivery's first `prev_hash` must be.
        public var lastHash: String
        /// The `prev_hash` of the first event held (nil for seq 1): the previous delivery's last hash.
        public var firstPrevHash: String?
        public var periodStart: Int64
        public var periodEnd: Int64
    }

    public struct Report: Sendable {
        public var events: Int
        /// Commitments read, and how many of them had their signature checked against a key.
        public var commitments: Int
        public var signaturesChecked: Int
        /// Chained events no commitment here covers: those made after the last one delivered.
        public var uncommitted: Int
        /// Copies of an event already counted.
        public var duplicates: Int
        /// ThresholdEvents and anything else that is not a UsageEvent, passed over.
        public var otherEvents: Int
        public var chains: [Chain]
        /// In the order of the input.
        public var problems: [Problem]
    }

    /// One link of a chain: a usage event (with its period) or a gap event (with its span).
    private struct Link {
        var eventID: String
        var seq: Int64
        var prevHash: String?
        var hash: String
        var period: Period?
        var gap: Period?

        /// The span the link speaks for: a period, or a gap from its start to its end.
        var span: Period { period ?? gap ?? Period(start: 0, end: 0) }
    }

    private struct Entry {
        var link: Link
        var location: String
        var order: Int
    }

    private struct ChainKey: Hashable {
        var hostID: String
        var instanceID: String
    }

    private struct HeldCommitment {
        var commitment: UsageCommitment
        var location: String
        var order: Int
    }

    private var chains: [ChainKey: [Int64: Entry]] = [:]
    private var commitments: [String: [Int64: HeldCommitment]] = [:]
    private var signaturesChecked = 0
    /// Public keys by host id; the key under nil is any host's.
    private let keys: [String?: PublicIdentity]
    private var problems: [(order: Int, problem: Problem)] = []
    private var count = 0
    private var duplicates = 0
    private var others = 0
    /// When set, every chain must start at seq 1: the input is an instance's whole history.
    public var fromStart: Bool

    /// `keys`: the hosts' public keys, by host id (nil: a key for every host); a commitment of a
    /// host without a key has its hash and root checked but not its signature.
    public init(fromStart: Bool = false, keys: [String?: PublicIdentity] = [:]) {
        self.fromStart = fromStart
        self.keys = keys
    }

    /// Adds one delivered JSON object: a UsageEvent, a CloudEvent carrying one in `data`, or
    /// anything else (counted and passed over when it is a ThresholdEvent or a CloudEvent of one).
    public mutating func add(_ object: Data, location: String) {
        count += 1
        let order = count
        func refuse(_ kind: Problem.Kind, _ reason: String, _ event: UsageEvent? = nil) {
            problems.append(
                (order, Problem(
                    kind: kind, location: location, eventID: event?.eventID, hostID: event?.hostID, instanceID: event?.instanceID,
                    seq: event?.seq, reason: reason)))
        }
        guard let value = try? CanonicalJSON(parsing: object), case .object(var members) = value else {
            return refuse(.notJSON, "not a JSON object")
        }
        var cloudEvent = false
        if case .string = members["specversion"] {
            guard let data = members["data"], case .object(let inner) = data else {
                return refuse(.notAnEvent, "a CloudEvent without a JSON object in `data`")
            }
            members = inner
            cloudEvent = true
        }
        guard case .string(let type)? = members["event_type"] else { return refuse(.notAnEvent, "no event_type: not a hostmeter event") }
        if type == UsageCommitment.eventType {
            return addCommitment(members, object: object, cloudEvent: cloudEvent, location: location, order: order)
        }
        if type == MeteringGapEvent.eventType {
            return addGap(members, location: location, order: order)
        }
        guard type == UsageEvent.eventType else {
            others += 1
            return
        }
        let event: UsageEvent
        do {
            event =
                cloudEvent
                ? try JSONDecoder().decode(CloudEventEnvelope.self, from: object).data
                : try JSONDecoder().decode(UsageEvent.self, from: object)
        } catch {
            return refuse(.notAnEvent, "not a UsageEvent: \(error)")
        }
        guard let seq = event.seq, case .string(let hash)? = members["hash"] else {
            return refuse(.unchained, "UsageEvent \(event.version) without seq and hash: it has no chain to verify", event)
        }
        members["hash"] = nil
        let recomputed: String
        do {
            recomputed = UsageEvent.hexSHA256(try CanonicalJSON.object(members).canonicalBytes())
        } catch {
            return refuse(.changed, "\(error)", event)
        }
        guard recomputed == hash else {
            return refuse(.changed, "hash \(hash) is not the SHA-256 of its content (\(recomputed)): the event was changed", event)
        }
        hold(
            Link(eventID: event.eventID, seq: seq, prevHash: event.prevHash, hash: hash, period: event.period, gap: nil),
            in: ChainKey(hostID: event.hostID, instanceID: event.instanceID), location: location, order: order)
    }

    /// Puts a link in its chain; a copy of one held counts as a duplicate, another link with the
    /// same seq is a fork.
    private mutating func hold(_ link: Link, in key: ChainKey, location: String, order: Int) {
        if let held = chains[key]?[link.seq] {
            if held.link.hash == link.hash {
                duplicates += 1
            } else {
                problems.append(
                    (order, Problem(
                        kind: .fork, location: location, eventID: link.eventID, hostID: key.hostID, instanceID: key.instanceID,
                        seq: link.seq,
                        reason: "a second, different event with this seq (the first at \(held.location)): the chain forks")))
            }
            return
        }
        chains[key, default: [:]][link.seq] = Entry(link: link, location: location, order: order)
    }

    /// A `metering_gap` event: checked by its hash, then held in its instance's chain.
    private mutating func addGap(_ members: [String: CanonicalJSON], location: String, order: Int) {
        guard case .string(let eventID)? = members["event_id"], case .string(let host)? = members["host_id"],
            case .string(let instance)? = members["instance_id"], case .number(let seq)? = members["seq"],
            case .string(let hash)? = members["hash"], case .object(let span)? = members["gap"],
            case .number(let from)? = span["from"], case .number(let to)? = span["to"]
        else {
            problems.append((order, Problem(kind: .notAnEvent, location: location, reason: "not a metering_gap")))
            return
        }
        var rest = members
        rest["hash"] = nil
        guard let bytes = try? CanonicalJSON.object(rest).canonicalBytes(), UsageEvent.hexSHA256(bytes) == hash else {
            problems.append(
                (order, Problem(
                    kind: .changed, location: location, eventID: eventID, hostID: host, instanceID: instance, seq: Int64(seq),
                    reason: "hash \(hash) is not the SHA-256 of its content: the gap event was changed")))
            return
        }
        var previous: String?
        if case .string(let text)? = members["prev_hash"] { previous = text }
        hold(
            Link(eventID: eventID, seq: Int64(seq), prevHash: previous, hash: hash, period: nil, gap: Period(start: Int64(from), end: Int64(to))),
            in: ChainKey(hostID: host, instanceID: instance), location: location, order: order)
    }

    /// How many links this host's chains hold here.
    private func entriesHeld(host: String) -> Int {
        chains.reduce(0) { $0 + ($1.key.hostID == host ? $1.value.count : 0) }
    }

    /// Whether `commitment`'s ranges are each in order and add up to its `tree_size`, and it covers
    /// no more than `heldEvents`: only then are its ranges walked.
    static func rangesAreSound(_ commitment: UsageCommitment, heldEvents: Int) -> Bool {
        guard commitment.treeSize > 0, commitment.treeSize <= heldEvents else { return false }
        var total = 0
        for range in commitment.ranges {
            guard range.firstSeq >= 1, range.firstSeq <= range.lastSeq else { return false }
            let (length, overflow) = (range.lastSeq - range.firstSeq).addingReportingOverflow(1)
            guard !overflow, length <= Int64(commitment.treeSize - total) else { return false }
            total += Int(length)
        }
        return total == commitment.treeSize
    }

    /// An event's place in the commitment that covers it.
    public struct InclusionProof: Sendable {
        public var eventID: String
        public var commitmentEventID: String
        public var commitmentSeq: Int64
        public var leafIndex: Int
        public var treeSize: Int
        public var leafHash: String
        public var path: [String]
        public var root: String
        /// Whether the path leads from the event's hash to the commitment's root.
        public var verified: Bool
    }

    /// The inclusion proof of the event `eventID` in the commitment here that covers it, when that
    /// commitment's events are all here (RFC 9162 §2.1.3).
    public func inclusionProof(of eventID: String) -> InclusionProof? {
        guard let (key, target) = chains.lazy.compactMap({ key, entries in
            entries.values.first { $0.link.eventID == eventID }.map { (key, $0) }
        }).first else { return nil }
        let seq = target.link.seq
        for held in (commitments[key.hostID] ?? [:]).values {
            let commitment = held.commitment
            guard Self.rangesAreSound(commitment, heldEvents: entriesHeld(host: key.hostID)),
                commitment.ranges.contains(where: { $0.instanceID == key.instanceID && $0.firstSeq <= seq && seq <= $0.lastSeq })
            else { continue }
            var leaves: [CommitmentLeaf] = []
            for range in commitment.ranges where range.firstSeq <= range.lastSeq {
                let chain = chains[ChainKey(hostID: key.hostID, instanceID: range.instanceID)] ?? [:]
                for member in range.firstSeq...range.lastSeq {
                    guard let link = chain[member]?.link else { return nil }
                    leaves.append(CommitmentLeaf(instanceID: range.instanceID, seq: member, hash: link.hash, period: link.span))
                }
            }
            let ordered = CommitmentLeaf.ordered(leaves).map { $0.hashBytes ?? Data($0.hash.utf8) }
            guard let index = CommitmentLeaf.ordered(leaves).firstIndex(where: { $0.instanceID == key.instanceID && $0.seq == seq }),
                let path = MerkleTree.inclusionProof(of: index, in: ordered),
                let root = CommitmentLeaf.bytes(hex: commitment.root)
            else { return nil }
            let leafHash = MerkleTree.leafHash(ordered[index])
            return InclusionProof(
                eventID: eventID, commitmentEventID: commitment.eventID, commitmentSeq: commitment.seq, leafIndex: index,
                treeSize: ordered.count, leafHash: UsageCommitment.hex(leafHash), path: path.map(UsageCommitment.hex),
                root: commitment.root,
                verified: MerkleTree.verify(leafHash: leafHash, index: index, size: ordered.count, proof: path, root: root))
        }
        return nil
    }

    private mutating func addCommitment(
        _ members: [String: CanonicalJSON], object: Data, cloudEvent: Bool, location: String, order: Int
    ) {
        func refuse(_ kind: Problem.Kind, _ reason: String, _ commitment: UsageCommitment? = nil) {
            problems.append(
                (order, Problem(
                    kind: kind, location: location, eventID: commitment?.eventID, hostID: commitment?.hostID,
                    instanceID: nil, seq: commitment?.seq, reason: reason)))
        }
        let commitment: UsageCommitment
        do {
            commitment =
                cloudEvent
                ? try JSONDecoder().decode(CommitmentEnvelope.self, from: object).data
                : try JSONDecoder().decode(UsageCommitment.self, from: object)
        } catch {
            return refuse(.notAnEvent, "not a usage_commitment: \(error)")
        }
        var sealed = members
        sealed["hash"] = nil
        sealed["signature"] = nil
        let bytes: [UInt8]
        do {
            bytes = try CanonicalJSON.object(sealed).canonicalBytes()
        } catch {
            return refuse(.changed, "\(error)", commitment)
        }
        guard UsageEvent.hexSHA256(bytes) == commitment.hash else {
            return refuse(.changed, "hash \(commitment.hash) is not the SHA-256 of the commitment's content: it was changed", commitment)
        }
        if let key = keys[commitment.hostID] ?? keys[nil] {
            guard commitment.keyID == key.keyID else {
                return refuse(
                    .badSignature, "signed with key \(commitment.keyID), not the host's \(key.keyID)", commitment)
            }
            guard let signature = Data(base64Encoded: commitment.signature),
                key.isValidSignature(signature, of: bytes)
            else {
                return refuse(.badSignature, "the signature does not verify with key \(key.keyID): forged or changed", commitment)
            }
            signaturesChecked += 1
        }
        if let held = commitments[commitment.hostID]?[commitment.seq] {
            if held.commitment.hash != commitment.hash {
                refuse(.fork, "a second, different commitment with this seq (the first at \(held.location))", commitment)
            }
            return
        }
        commitments[commitment.hostID, default: [:]][commitment.seq] = HeldCommitment(
            commitment: commitment, location: location, order: order)
    }

    /// The chains checked link by link.
    public func report() -> Report {
        var found = problems
        var verified: [Chain] = []
        for (key, entries) in chains {
            let ordered = entries.values.sorted { $0.link.seq < $1.link.seq }
            guard let first = ordered.first, let last = ordered.last else { continue }
            func refuse(_ entry: Entry, _ kind: Problem.Kind, _ reason: String) {
                found.append(
                    (entry.order, Problem(
                        kind: kind, location: entry.location, eventID: entry.link.eventID, hostID: key.hostID,
                        instanceID: key.instanceID, seq: entry.link.seq, reason: reason)))
            }
            if first.link.seq == 1, first.link.prevHash != nil {
                refuse(first, .broken, "seq 1 has a prev_hash: nothing comes before an instance's first event")
            }
            if fromStart, first.link.seq != 1 {
                refuse(first, .notFromStart, "the chain starts at seq \(first.link.seq), not 1: events 1 to \(first.link.seq - 1) are missing")
            }
            // The last usage period, and the gaps announced since it.
            var lastUsage = first.link.period == nil ? nil : first
            var gaps: [Period] = first.link.gap.map { [$0] } ?? []
            for (earlier, later) in zip(ordered, ordered.dropFirst()) {
                let expected = earlier.link.seq + 1
                if later.link.seq != expected {
                    refuse(
                        later, .missing,
                        later.link.seq == expected + 1
                            ? "seq \(expected) is missing: an event was dropped"
                            : "seqs \(expected) to \(later.link.seq - 1) are missing: events were dropped")
                    lastUsage = later.link.period == nil ? nil : later
                    gaps = later.link.gap.map { [$0] } ?? []
                    continue
                }
                if later.link.prevHash != earlier.link.hash {
                    refuse(later, .broken, "prev_hash is not the hash of seq \(earlier.link.seq) (\(earlier.link.hash)): the chain is broken")
                }
                if let gap = later.link.gap {
                    gaps.append(gap)
                    continue
                }
                guard let period = later.link.period else { continue }
                if let previous = lastUsage, let end = previous.link.period?.end, period.start != end {
                    if period.start < end {
                        refuse(
                            later, .overlap,
                            "its period starts at \(period.start), inside seq \(previous.link.seq)'s, which ends at \(end): billed twice")
                    } else if !gaps.contains(where: { $0.start <= end && $0.end >= period.start }) {
                        refuse(
                            later, .hole,
                            "no event or gap event covers [\(end), \(period.start)) between seq \(previous.link.seq) and this one")
                    }
                }
                lastUsage = later
                gaps = []
            }
            verified.append(
                Chain(
                    hostID: key.hostID, instanceID: key.instanceID, firstSeq: first.link.seq, lastSeq: last.link.seq,
                    lastHash: last.link.hash, firstPrevHash: first.link.prevHash,
                    periodStart: first.link.span.start, periodEnd: last.link.span.end))
        }
        // Commitments: each host's chain of them, then each one's root over the events it covers.
        var covered: Set<String> = []
        var commitmentCount = 0
        for (host, held) in commitments {
            let ordered = held.values.sorted { $0.commitment.seq < $1.commitment.seq }
            commitmentCount += ordered.count
            func refuse(_ entry: HeldCommitment, _ kind: Problem.Kind, _ reason: String) {
                found.append(
                    (entry.order, Problem(
                        kind: kind, location: entry.location, eventID: entry.commitment.eventID, hostID: host,
                        instanceID: nil, seq: entry.commitment.seq, reason: "commitment: " + reason)))
            }
            if let first = ordered.first, first.commitment.seq == 1, first.commitment.prevHash != nil {
                refuse(first, .commitmentBroken, "seq 1 has a prev_hash")
            }
            if fromStart, let first = ordered.first, first.commitment.seq != 1 {
                refuse(first, .commitmentMissing, "this host's commitments start at \(first.commitment.seq), not 1")
            }
            for (earlier, later) in zip(ordered, ordered.dropFirst()) {
                if later.commitment.seq != earlier.commitment.seq + 1 {
                    refuse(later, .commitmentMissing, "commitment \(earlier.commitment.seq + 1) of this host is missing")
                } else if later.commitment.prevHash != earlier.commitment.hash {
                    refuse(later, .commitmentBroken, "prev_hash is not the hash of commitment \(earlier.commitment.seq)")
                }
            }
            let held = entriesHeld(host: host)
            for entry in ordered {
                // Ranges from a file are not trusted: they must add up to tree_size, and no more
                // events than are here are walked (a range to 10^18 is refused, not iterated).
                guard Self.rangesAreSound(entry.commitment, heldEvents: held) else {
                    refuse(
                        entry, entry.commitment.treeSize > held ? .uncovered : .rootMismatch,
                        entry.commitment.treeSize > held
                            ? "it covers \(entry.commitment.treeSize) events, more than this host has here (\(held))"
                            : "its ranges do not add up to its tree_size (\(entry.commitment.treeSize))")
                    continue
                }
                var leaves: [CommitmentLeaf] = []
                var absent: [String] = []
                for range in entry.commitment.ranges {
                    let chain = chains[ChainKey(hostID: host, instanceID: range.instanceID)] ?? [:]
                    for seq in range.firstSeq...range.lastSeq {
                        guard let link = chain[seq]?.link else {
                            absent.append("\(range.instanceID) seq \(seq)")
                            continue
                        }
                        let key = "\(host)\n\(range.instanceID)\n\(seq)"
                        if !covered.insert(key).inserted {
                            refuse(entry, .coveredTwice, "\(range.instanceID) seq \(seq) is covered by another commitment too")
                        }
                        leaves.append(CommitmentLeaf(instanceID: range.instanceID, seq: seq, hash: link.hash, period: link.span))
                    }
                }
                guard absent.isEmpty else {
                    refuse(
                        entry, .uncovered,
                        "it covers \(absent.count) event\(absent.count == 1 ? "" : "s") that are not here (first: \(absent[0])): dropped or cut")
                    continue
                }
                let root = UsageCommitment.hex(
                    MerkleTree.root(CommitmentLeaf.ordered(leaves).map { $0.hashBytes ?? Data($0.hash.utf8) }))
                if leaves.count != entry.commitment.treeSize || root != entry.commitment.root {
                    refuse(entry, .rootMismatch, "its root \(entry.commitment.root) is not the root over the \(leaves.count) events it covers (\(root))")
                }
            }
        }
        var uncommitted = 0
        for (key, entries) in chains {
            for seq in entries.keys where !covered.contains("\(key.hostID)\n\(key.instanceID)\n\(seq)") { uncommitted += 1 }
        }
        verified.sort { ($0.hostID, $0.instanceID) < ($1.hostID, $1.instanceID) }
        return Report(
            events: count, commitments: commitmentCount, signaturesChecked: signaturesChecked, uncommitted: uncommitted,
            duplicates: duplicates, otherEvents: others, chains: verified,
            problems: found.sorted { $0.order < $1.order }.map(\.problem))
    }
}

/// A structured CloudEvent's `data`, as the cloudevents sink sends a UsageEvent.
private struct CloudEventEnvelope: Decodable {
    var data: UsageEvent
}

/// A structured CloudEvent's `data`, as the cloudevents sink sends a commitment.
private struct CommitmentEnvelope: Decodable {
    var data: UsageCommitment
}
