#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// `api.listen`: the address the API binds. Apart from the server so that the configuration checks
/// it with the same code, without the HTTP stack.
public enum ListenAddress {
    /// `127.0.0.1:9780`, `[::1]:9780`, `localhost:9780`.
    public static func parse(_ listen: String) throws(ListenAddressError) -> (host: String, port: Int) {
        var host: Substring
        let portText: Substring
        if listen.hasPrefix("[") {
            guard let close = listen.firstIndex(of: "]"), listen[listen.index(after: close)...].hasPrefix(":") else {
                throw ListenAddressError(address: listen)
            }
            host = listen[listen.index(after: listen.startIndex)..<close]
            portText = listen[listen.index(close, offsetBy: 2)...]
        } else {
            guard let colon = listen.lastIndex(of: ":") else { throw ListenAddressError(address: listen) }
            host = listen[..<colon]
            portText = listen[listen.index(after: colon)...]
            // Bytes, not Characters: ':' followed by a combining mark is one Character.
            if host.utf8.contains(UInt8(ascii: ":")) { throw ListenAddressError(address: listen) }
        }
        // Brackets belong to the [v6]:port syntax, never to a host: "[[]:1" would bind to "[".
        if host.utf8.contains(where: { $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") }) {
            throw ListenAddressError(address: listen)
        }
        host = host.isEmpty ? "0.0.0.0" : host
        guard let port = Int(portText), (0...65535).contains(port) else { throw ListenAddressError(address: listen) }
        return (String(host), port)
    }

    /// Whether `host` can only be reached from this machine: an IPv4 address in 127.0.0.0/8, the
    /// IPv6 loopback (in any spelling), or `localhost`. Any other name may resolve anywhere.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { $0.elementsEqual([UInt8](repeating: 0, count: 15) + [1]) }
        }
        return false
    }
}

/// A listen address that is not `host:port`.
public struct ListenAddressError: Error, Sendable, CustomStringConvertible {
    public var address: String
    public var description: String { "api.listen \"\(address)\" must be host:port with a port from 0 to 65535 ([v6]:port for IPv6)" }
}
