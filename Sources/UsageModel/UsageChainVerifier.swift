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
        /// Copies of an event already counted.
        public var duplicates: Int
        /// ThresholdEvents and anything else that is not a UsageEvent, passed over.
        public var otherEvents: Int
        public var chains: [Chain]
        /// In the order of the input.
        public var problems: [Problem]
    }

    private struct Entry {
        var event: UsageEvent
        var location: String
        var order: Int
    }

    private struct ChainKey: Hashable {
        var hostID: String
        var instanceID: String
    }

    private var chains: [ChainKey: [Int64: Entry]] = [:]
    private var problems: [(order: Int, problem: Problem)] = []
    private var count = 0
    private var duplicates = 0
    private var others = 0
    /// When set, every chain must start at seq 1: the input is an instance's whole history.
    public var fromStart: Bool

    public init(fromStart: Bool = false) {
        self.fromStart = fromStart
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
        let key = ChainKey(hostID: event.hostID, instanceID: event.instanceID)
        if let held = chains[key]?[seq] {
            if held.event.hash == hash {
                duplicates += 1
            } else {
                refuse(.fork, "a second, different event with this seq (the first at \(held.location)): the chain forks", event)
            }
            return
        }
        chains[key, default: [:]][seq] = Entry(event: event, location: location, order: order)
    }

    /// The chains checked link by link.
    public func report() -> Report {
        var found = problems
        var verified: [Chain] = []
        for (key, entries) in chains {
            let ordered = entries.values.sorted { $0.event.seq! < $1.event.seq! }
            guard let first = ordered.first, let last = ordered.last else { continue }
            func refuse(_ entry: Entry, _ kind: Problem.Kind, _ reason: String) {
                found.append(
                    (entry.order, Problem(
                        kind: kind, location: entry.location, eventID: entry.event.eventID, hostID: key.hostID,
                        instanceID: key.instanceID, seq: entry.event.seq, reason: reason)))
            }
            if first.event.seq == 1, first.event.prevHash != nil {
                refuse(first, .broken, "seq 1 has a prev_hash: nothing comes before an instance's first event")
            }
            if fromStart, first.event.seq != 1 {
                refuse(first, .notFromStart, "the chain starts at seq \(first.event.seq!), not 1: events 1 to \(first.event.seq! - 1) are missing")
            }
            for (earlier, later) in zip(ordered, ordered.dropFirst()) {
                let expected = earlier.event.seq! + 1
                if later.event.seq! != expected {
                    refuse(
                        later, .missing,
                        later.event.seq! == expected + 1
                            ? "seq \(expected) is missing: an event was dropped"
                            : "seqs \(expected) to \(later.event.seq! - 1) are missing: events were dropped")
                    continue
                }
                if later.event.prevHash != earlier.event.hash {
                    refuse(later, .broken, "prev_hash is not the hash of seq \(earlier.event.seq!) (\(earlier.event.hash ?? "")): the chain is broken")
                }
                if later.event.period.start != earlier.event.period.end {
                    refuse(
                        later, later.event.period.start < earlier.event.period.end ? .overlap : .hole,
                        later.event.period.start < earlier.event.period.end
                            ? "its period starts at \(later.event.period.start), inside seq \(earlier.event.seq!)'s, which ends at \(earlier.event.period.end): billed twice"
                            : "no event covers [\(earlier.event.period.end), \(later.event.period.start)) between seq \(earlier.event.seq!) and this one")
                }
            }
            verified.append(
                Chain(
                    hostID: key.hostID, instanceID: key.instanceID, firstSeq: first.event.seq!, lastSeq: last.event.seq!,
                    lastHash: last.event.hash ?? "", firstPrevHash: first.event.prevHash,
                    periodStart: first.event.period.start, periodEnd: last.event.period.end))
        }
        verified.sort { ($0.hostID, $0.instanceID) < ($1.hostID, $1.instanceID) }
        return Report(
            events: count, duplicates: duplicates, otherEvents: others, chains: verified,
            problems: found.sorted { $0.order < $1.order }.map(\.problem))
    }
}

/// A structured CloudEvent's `data`, as the cloudevents sink sends a UsageEvent.
private struct CloudEventEnvelope: Decodable {
    var data: UsageEvent
}
