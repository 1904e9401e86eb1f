import NIOCore

/// Who a connection comes from, for the per-peer limit: an IPv4 address, or the /64 an IPv6
/// address lies in. One host commonly holds a whole /64, so counting single IPv6 addresses would
/// give it 2^64 peers. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is its IPv4 address.
struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    let description: String

    init(_ address: SocketAddress?) {
        switch address {
        case .v4(let v4):
            description = Self.dotted(withUnsafeBytes(of: v4.address.sin_addr) { Array($0) })
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                description = Self.dotted(Array(bytes[12..<16]))
            } else {
                let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                description = groups.joined(separator: ":") + "::/64"
            }
        case .unixDomainSocket, nil:
            description = "local"
        }
    }

    private static func dotted(_ bytes: [UInt8]) -> String {
        bytes.map(String.init).joined(separator: ".")
    }
}
