import NIOCore
import Synchronization

/// Why the API closed a connection to protect itself: the value of the `reason` label of
/// `hostmeter_api_connections_closed_total`.
public enum APIConnectionCloseReason: String, Sendable, CaseIterable {
    /// Its peer held `api.max_connections_per_peer` connections.
    case peerLimit = "peer_limit"
    /// The API held its most connections.
    case connectionLimit = "connection_limit"
    /// Its client did not send a whole request within `api.request_timeout_seconds`.
    case requestTimeout = "request_timeout"
}

/// The API's open connections and their peers. It decides at accept whether a connection may
/// stay, and which connection makes room for it: within a peer's limit and the total, the one that
/// has waited longest on its client (idle, or still sending its request). A connection whose
/// request is being answered is never taken, so a peer that opens idle connections only ever
/// displaces its own, and a client that sends its request at once is served.
///
/// Every event loop's connections share it, so its state is behind a lock; it holds at most
/// `maxConnections` entries, and so at most as many peers. `Connection` is what eviction closes
/// (a `Channel` in the server, a plain value in tests).
final class ConnectionTable<Connection: Sendable>: Sendable {
    enum Admission {
        /// The connection may stay under `id`; `evicted` must be closed to make room for it.
        case admitted(id: UInt64, evicted: Eviction?)
        /// No room: every connection in the way is being answered.
        case refused(APIConnectionCloseReason)
    }

    struct Eviction {
        var connection: Connection
        var peer: PeerAddress
        var reason: APIConnectionCloseReason
    }

    private struct Entry {
        var peer: PeerAddress
        var connection: Connection
        /// Since when the connection waits on its client; nil while its request is being answered.
        var waitingSince: NIODeadline?
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var perPeer: [PeerAddress: Int] = [:]
        var nextID: UInt64 = 0

        /// The entry waiting on its client the longest among those `included`; O(entries), and
        /// entries are at most `maxConnections`.
        func longestWaiting(_ included: (Entry) -> Bool) -> UInt64? {
            var found: (id: UInt64, since: NIODeadline)?
            for (id, entry) in entries {
                guard let since = entry.waitingSince, included(entry) else { continue }
                if let current = found, (current.since, current.id) < (since, id) { continue }
                found = (id, since)
            }
            return found?.id
        }

        mutating func remove(_ id: UInt64) -> Entry? {
            guard let entry = entries.removeValue(forKey: id) else { return nil }
            let left = (perPeer[entry.peer] ?? 1) - 1
            perPeer[entry.peer] = left > 0 ? left : nil
            return entry
        }
    }

    let limits: APILimits
    private let state = Mutex(State())

    init(limits: APILimits) {
        self.limits = limits
    }

    /// A connection from `peer` opened at `now`: it waits on its client from then on.
    func admit(_ connection: Connection, from peer: PeerAddress, now: NIODeadline) -> Admission {
        state.withLock { state in
            var eviction: Eviction?
            if state.perPeer[peer, default: 0] >= limits.maxConnectionsPerPeer {
                guard let id = state.longestWaiting({ $0.peer == peer }), let entry = state.remove(id) else {
                    return .refused(.peerLimit)
                }
                eviction = Eviction(connection: entry.connection, peer: entry.peer, reason: .peerLimit)
            } else if state.entries.count >= limits.maxConnections {
                guard let id = state.longestWaiting({ _ in true }), let entry = state.remove(id) else {
                    return .refused(.connectionLimit)
                }
                eviction = Eviction(connection: entry.connection, peer: entry.peer, reason: .connectionLimit)
            }
            let id = state.nextID
            state.nextID += 1
            state.entries[id] = Entry(peer: peer, connection: connection, waitingSince: now)
            state.perPeer[peer, default: 0] += 1
            return .admitted(id: id, evicted: eviction)
        }
    }

    /// The connection waits on its client since `since`, or (nil) its request is being answered.
    /// Nothing happens for a connection that was evicted or removed.
    func setWaiting(_ id: UInt64, since: NIODeadline?) {
        state.withLock { state in
            state.entries[id]?.waitingSince = since
        }
    }

    /// The connection closed.
    func remove(_ id: UInt64) {
        _ = state.withLock { $0.remove(id) }
    }

    /// Connections held now, in all and from `peer`.
    func count(from peer: PeerAddress? = nil) -> Int {
        state.withLock { state in
            guard let peer else { return state.entries.count }
            return state.perPeer[peer] ?? 0
        }
    }
}
