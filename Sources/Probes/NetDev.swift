/// One interface line of /proc/net/dev.
public struct NetDevStats: Sendable, Equatable {
    public var name: String
    public var rxBytes: UInt64
    public var rxPackets: UInt64
    public var rxErrors: UInt64
    public var rxDropped: UInt64
    public var rxFifo: UInt64
    public var rxFrame: UInt64
    public var rxCompressed: UInt64
    public var rxMulticast: UInt64
    public var txBytes: UInt64
    public var txPackets: UInt64
    public var txErrors: UInt64
    public var txDropped: UInt64
    public var txFifo: UInt64
    public var txCollisions: UInt64
    public var txCarrier: UInt64
    public var txCompressed: UInt64

    public init(
        name: String, rxBytes: UInt64 = 0, rxPackets: UInt64 = 0, rxErrors: UInt64 = 0, rxDropped: UInt64 = 0, rxFifo: UInt64 = 0, rxFrame: UInt64 = 0, rxCompressed: UInt64 = 0, rxMulticast: UInt64 = 0, txBytes: UInt64 = 0, txPackets: UInt64 = 0, txErrors: UInt64 = 0, txDropped: UInt64 = 0, txFifo: UInt64 = 0, txCollisions: UInt64 = 0, txCarrier: UInt64 = 0, txCompressed: UInt64 = 0
    ) {
        self.name = name
        self.rxBytes = rxBytes
        self.rxPackets = rxPackets
        self.rxErrors = rxErrors
        self.rxDropped = rxDropped
        self.rxFifo = rxFifo
        self.rxFrame = rxFrame
        self.rxCompressed = rxCompressed
        self.rxMulticast = rxMulticast
        self.txBytes = txBytes
        self.txPackets = txPackets
        self.txErrors = txErrors
        self.txDropped = txDropped
        self.txFifo = txFifo
        self.txCollisions = txCollisions
        self.txCarrier = txCarrier
        self.txCompressed = txCompressed
    }
}

/// /proc/net/dev: counters of every interface in the reader's network namespace.
public enum NetDev {
    public static let path = "/proc/net/dev"

    public static func parse(_ text: String) throws(ProbeError) -> [NetDevStats] {
        try parse(Array(text.utf8))
    }

    /// Parses the two header lines and one line per interface: `name: 16 counters`.
    ///
    /// The name ends at the first colon (Linux refuses ':' in interface names, so dots and dashes
    /// are the only punctuation to expect); kernels before 2.6 printed no space after the colon,
    /// which splitting at the colon handles too.
    public static func parse(_ bytes: [UInt8], path: String = NetDev.path) throws(ProbeError) -> [NetDevStats] {
        let lines = KernelText.lines(bytes)
        guard !lines.isEmpty else { throw .malformed(path: path, line: 0, reason: "empty file") }
        guard lines.count >= 2, lines[0].bytes.firstIndex(of: UInt8(ascii: "|")) != nil,
            lines[1].bytes.firstIndex(of: UInt8(ascii: "|")) != nil
        else {
            throw .malformed(path: path, line: 1, reason: "missing the two header lines (truncated file?)")
        }
        var interfaces: [NetDevStats] = []
        for line in lines.dropFirst(2) {
            let raw = KernelText.trimmed(line.bytes)
            if raw.isEmpty { continue }
            guard let colon = raw.firstIndex(of: ASCII.colon), colon > raw.startIndex else {
                throw .malformed(path: path, line: line.number, reason: "expected 'interface: counters', got '\(line.excerpt)'")
            }
            let name = KernelText.string(raw[raw.startIndex..<colon])
            let fields = KernelText.fields(raw[(colon + 1)...])
            guard fields.count == 16 else {
                throw .malformed(
                    path: path, line: line.number,
                    reason: "expected 16 counters for \(name), got \(fields.count)")
            }
            var values = [UInt64](repeating: 0, count: 16)
            for (index, field) in fields.enumerated() {
                guard let value = KernelText.uint64(field) else {
                    throw .malformed(
                        path: path, line: line.number,
                        reason: "counter \(index + 1) of \(name) is not an unsigned 64-bit integer: '\(KernelText.string(field))'")
                }
                values[index] = value
            }
            interfaces.append(
                NetDevStats(
                    name: name, rxBytes: values[0], rxPackets: values[1], rxErrors: values[2],
                    rxDropped: values[3], rxFifo: values[4], rxFrame: values[5], rxCompressed: values[6],
                    rxMulticast: values[7], txBytes: values[8], txPackets: values[9], txErrors: values[10],
                    txDropped: values[11], txFifo: values[12], txCollisions: values[13], txCarrier: values[14],
                    txCompressed: values[15]))
        }
        return interfaces
    }
}

extension NetDevStats: Encodable {
    private enum CodingKeys: String, CodingKey {
        case name
        case rxBytes = "rx_bytes", rxPackets = "rx_packets", rxErrors = "rx_errors", rxDropped = "rx_dropped"
        case rxFifo = "rx_fifo", rxFrame = "rx_frame", rxCompressed = "rx_compressed", rxMulticast = "rx_multicast"
        case txBytes = "tx_bytes", txPackets = "tx_packets", txErrors = "tx_errors", txDropped = "tx_dropped"
        case txFifo = "tx_fifo", txCollisions = "tx_collisions", txCarrier = "tx_carrier"
        case txCompressed = "tx_compressed"
    }
}
