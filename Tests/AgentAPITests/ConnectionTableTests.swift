@testable import AgentAPI
import NIOCore
import Testing

/// The decisions behind the per-peer and total connection limits, with time as an input.
@Suite struct ConnectionTableTests {
    let alice = PeerAddress(try! SocketAddress(ipAddress: "192.0.2.1", port: 40_000))
    let bob = PeerAddress(try! SocketAddress(ipAddress: "192.0.2.2", port: 40_000))

    static func at(_ seconds: Int64) -> NIODeadline { .uptimeNanoseconds(UInt64(seconds) * 1_000_000_000) }

    func admittedID(_ admission: ConnectionTable<Int>.Admission) -> UInt64? {
        if case .admitted(let id, _) = admission { return id }
        return nil
    }

    func evicted(_ admission: ConnectionTable<Int>.Admission) -> (Int, APIConnectionCloseReason)? {
        if case .admitted(_, let eviction?) = admission { return (eviction.connection, eviction.reason) }
        return nil
    }

    @Test func aPeerAtItsLimitDisplacesItsLongestWaitingConnection() throws {
        let table = ConnectionTable<Int>(limits: APILimits(maxConnections: 100, maxConnectionsPerPeer: 3))
        var ids: [UInt64] = []
        for connection in 0..<3 {
            ids.append(try #require(admittedID(table.admit(connection, from: alice, now: Self.at(Int64(connection))))))
        }
        // Connection 0 is being answered; 1 has waited longest of the others.
        table.setWaiting(ids[0], since: nil)
        let fourth = table.admit(3, from: alice, now: Self.at(10))
        #expect(evicted(fourth)?.0 == 1)
        #expect(evicted(fourth)?.1 == .peerLimit)
        #expect(table.count(from: alice) == 3)
        // Another peer is not affected by alice's limit.
        #expect(evicted(table.admit(4, from: bob, now: Self.at(11))) == nil)
        #expect(table.count(from: bob) == 1)
    }

    @Test func aPeerWhoseConnectionsAreAllBeingAnsweredIsRefused() throws {
        let table = ConnectionTable<Int>(limits: APILimits(maxConnections: 100, maxConnectionsPerPeer: 2))
        for connection in 0..<2 {
            let id = try #require(admittedID(table.admit(connection, from: alice, now: Self.at(0))))
            table.setWaiting(id, since: nil)
        }
        guard case .refused(let reason) = table.admit(2, from: alice, now: Self.at(1)) else {
            Issue.record("a third connection was admitted")
            return
        }
        #expect(reason == .peerLimit)
        #expect(table.count() == 2)
    }

    @Test func theTotalLimitDisplacesTheLongestWaitingConnectionOfAnyPeer() throws {
        let table = ConnectionTable<Int>(limits: APILimits(maxConnections: 3, maxConnectionsPerPeer: 10))
        let first = try #require(admittedID(table.admit(0, from: alice, now: Self.at(5))))
        _ = table.admit(1, from: bob, now: Self.at(1))
        _ = table.admit(2, from: alice, now: Self.at(3))
        table.setWaiting(first, since: Self.at(7))
        let next = table.admit(3, from: alice, now: Self.at(8))
        #expect(evicted(next)?.0 == 1, "bob's connection waited since 1 s, the longest")
        #expect(evicted(next)?.1 == .connectionLimit)
        #expect(table.count() == 3)
        #expect(table.count(from: bob) == 0)
    }

    @Test func removedConnectionsFreeTheirPlaceAndLateUpdatesAreIgnored() throws {
        let table = ConnectionTable<Int>(limits: APILimits(maxConnections: 2, maxConnectionsPerPeer: 2))
        let id = try #require(admittedID(table.admit(0, from: alice, now: Self.at(0))))
        table.remove(id)
        table.remove(id)
        table.setWaiting(id, since: nil)
        #expect(table.count() == 0)
        #expect(table.count(from: alice) == 0)
        #expect(evicted(table.admit(1, from: alice, now: Self.at(1))) == nil)
        #expect(evicted(table.admit(2, from: alice, now: Self.at(2))) == nil)
    }

    /// However many peers come and go, the table holds at most `maxConnections` entries.
    @Test func theTableStaysBoundedUnderAFloodOfPeers() throws {
        let table = ConnectionTable<Int>(limits: APILimits(maxConnections: 8, maxConnectionsPerPeer: 2))
        for connection in 0..<1_000 {
            let peer = PeerAddress(try SocketAddress(ipAddress: "10.0.\(connection / 256).\(connection % 256)", port: 1))
            _ = table.admit(connection, from: peer, now: Self.at(Int64(connection)))
            #expect(table.count() <= 8)
        }
        #expect(table.count() == 8)
    }

    @Test(arguments: [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::1", "0:0:0:0::/64"),
    ])
    func peersAreIPv4AddressesAndIPv6Slash64s(address: String, peer: String) throws {
        #expect(PeerAddress(try SocketAddress(ipAddress: address, port: 9780)).description == peer)
    }

    @Test func oneIPv6Slash64IsOnePeer() throws {
        let one = PeerAddress(try SocketAddress(ipAddress: "2001:db8:0:7::1", port: 1))
        let sameNetwork = PeerAddress(try SocketAddress(ipAddress: "2001:db8:0:7:ffff::2", port: 2))
        let other = PeerAddress(try SocketAddress(ipAddress: "2001:db8:0:8::1", port: 1))
        #expect(one == sameNetwork)
        #expect(one != other)
    }
}
