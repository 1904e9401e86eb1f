import Foundation
public import Probes

#if canImport(Glibc)
import Glibc
#endif

/// A veth pair: `hostName` in this network namespace, `peerName` moved into a new namespace
/// `namespace`, with IPv4 addresses on a /30 and IPv6 off on both ends so no neighbour discovery
/// or MLD adds packets to the counters. Deleting the namespace deletes the pair.
public final class VethPair {
    public let namespace: String
    public let hostName: String
    public let peerName: String
    public let hostAddress: String
    public let peerAddress: String
    private var removed = false

    public init() throws {
        guard let ip = KernelFixtures.ipTool else { throw TestSupportError("no ip tool") }
        let number = KernelFixtures.nextNumber()
        let pid = Int(getpid())
        namespace = "hm-test-ns-\(pid)x\(number)"
        hostName = "hmh\(pid)x\(number)"
        peerName = "hmp\(pid)x\(number)"
        // A /30 in 10.240.0.0/12 picked by pid and counter: unlikely to meet a real route, and
        // apart from every other pair this process makes (up to 2^18 of them).
        let slot = pid &* 4099 &+ number
        let base = 0x0AF0_0000 | ((slot & 0x3FFFF) << 2)
        func dotted(_ value: Int) -> String { "\(value >> 24 & 255).\(value >> 16 & 255).\(value >> 8 & 255).\(value & 255)" }
        hostAddress = dotted(base + 1)
        peerAddress = dotted(base + 2)
        do {
            try KernelFixtures.run([ip, "netns", "add", namespace])
            try KernelFixtures.run([ip, "link", "add", hostName, "type", "veth", "peer", "name", peerName])
            try? KernelFixtures.write("1\n", to: "/proc/sys/net/ipv6/conf/\(hostName)/disable_ipv6")
            try KernelFixtures.run([ip, "link", "set", peerName, "netns", namespace])
            // Without IPv6 in the kernel there is no file to write, and nothing to silence.
            _ = try? KernelFixtures.run(
                [ip, "netns", "exec", namespace, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/\(peerName)/disable_ipv6"])
            try KernelFixtures.run([ip, "addr", "add", hostAddress + "/30", "dev", hostName])
            try KernelFixtures.run([ip, "link", "set", hostName, "up"])
            try KernelFixtures.run([ip, "-n", namespace, "addr", "add", peerAddress + "/30", "dev", peerName])
            try KernelFixtures.run([ip, "-n", namespace, "link", "set", peerName, "up"])
            try KernelFixtures.run([ip, "-n", namespace, "link", "set", "lo", "up"])
        } catch {
            remove()
            throw error
        }
    }

    /// The host end's counters as the kernel reports them: the files the agent reads.
    public func hostStatistics() throws -> InterfaceCounters { try SysFS().interfaceCounters(hostName) }

    /// The peer's counters as the kernel reports them inside its namespace (/proc/net/dev read there).
    public func peerStatistics() throws -> NetDevStats {
        guard let ip = KernelFixtures.ipTool else { throw TestSupportError("no ip tool") }
        let text = try KernelFixtures.run([ip, "netns", "exec", namespace, "cat", "/proc/net/dev"])
        guard let stats = try NetDev.parse(text).first(where: { $0.name == peerName }) else {
            throw TestSupportError("\(peerName) not in \(namespace)'s /proc/net/dev")
        }
        return stats
    }

    /// Deletes the pair only, keeping the namespace (to see an interface disappear).
    public func deleteLink() throws {
        guard let ip = KernelFixtures.ipTool else { throw TestSupportError("no ip tool") }
        try KernelFixtures.run([ip, "link", "delete", hostName])
    }

    /// Deletes the namespace and, if it is still there, the host end; safe to call twice.
    public func remove() {
        guard !removed, let ip = KernelFixtures.ipTool else { return }
        removed = true
        _ = try? KernelFixtures.run([ip, "netns", "delete", namespace])
        if FileReader.exists("/sys/class/net/" + hostName) {
            _ = try? KernelFixtures.run([ip, "link", "delete", hostName])
        }
    }

    deinit { remove() }
}

/// ICMP over a raw socket (root only). An echo request of `payload` bytes is answered by the
/// peer's kernel with a reply of the same size: traffic of a known size both ways, made by one
/// process without running anything inside the peer's namespace. An echo reply sent unasked is
/// dropped by the peer's kernel without an answer: traffic one way only.
public final class ICMPEcho {
    private let socket: Int32
    private let destination: sockaddr_in
    /// Unique to this object in the process: tests may ping at the same time, and a raw socket
    /// sees every ICMP packet of the host.
    private let identifier = UInt16(truncatingIfNeeded: Int(getpid()) &* 257 &+ KernelFixtures.nextNumber())
    private var sequence: UInt16 = 0

    public init(to address: String) throws {
        let descriptor = Glibc.socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
        guard descriptor >= 0 else { throw TestSupportError("raw socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var destination = sockaddr_in()
        destination.sin_family = sa_family_t(AF_INET)
        guard inet_pton(AF_INET, address, &destination.sin_addr) == 1 else {
            close(descriptor)
            throw TestSupportError("bad address \(address)")
        }
        self.socket = descriptor
        self.destination = destination
    }

    deinit { close(socket) }

    /// Bytes one ICMP message of `payload` bytes puts on an Ethernet link (veth counts frames
    /// without the FCS): Ethernet 14 + IPv4 20 + ICMP 8 header bytes.
    public static func frameBytes(payload: Int) -> UInt64 { UInt64(14 + 20 + 8 + payload) }

    /// Sends one echo request with `payload` bytes of data and waits (at most 2 s) for its reply.
    public func ping(payload: Int) throws {
        let packet = try send(type: 8, payload: payload)
        // A raw socket sees every ICMP packet of the host: wait for the reply to this request.
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw TestSupportError("no echo reply: \(String(cString: strerror(errno)))") }
            // The IPv4 header comes first (the source address at bytes 12 to 15); then type 0
            // (echo reply) and our identifier and sequence.
            let icmp = Int(buffer[0] & 0x0F) * 4
            guard count >= icmp + 8 else { continue }
            let source = withUnsafeBytes(of: destination.sin_addr.s_addr) { Array($0) }
            if buffer[12...15].elementsEqual(source), buffer[icmp] == 0,
                buffer[icmp + 4...icmp + 7].elementsEqual(packet[4...7])
            {
                return
            }
        }
        throw TestSupportError("no echo reply within 2 s")
    }

    /// Sends one echo reply nobody asked for: it reaches the peer, which answers nothing.
    public func sendUnansweredReply(payload: Int) throws { _ = try send(type: 0, payload: payload) }

    /// Sends one ICMP echo message (`type` 8 request, 0 reply) and returns it.
    private func send(type: UInt8, payload: Int) throws -> [UInt8] {
        sequence &+= 1
        var packet = [UInt8](repeating: 0, count: 8 + payload)
        packet[0] = type
        packet[4] = UInt8(identifier >> 8)
        packet[5] = UInt8(identifier & 0xFF)
        packet[6] = UInt8(sequence >> 8)
        packet[7] = UInt8(sequence & 0xFF)
        for index in 8..<packet.count { packet[index] = UInt8(truncatingIfNeeded: index) }
        let checksum = Self.checksum(packet)
        packet[2] = UInt8(checksum >> 8)
        packet[3] = UInt8(checksum & 0xFF)
        var address = destination
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                packet.withUnsafeBytes {
                    sendto(socket, $0.baseAddress, $0.count, 0, socketAddress, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard sent == packet.count else { throw TestSupportError("sendto: \(String(cString: strerror(errno)))") }
        return packet
    }

    /// The Internet checksum (RFC 1071).
    public static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum &+= UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum &+= UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return ~UInt16(sum)
    }
}
