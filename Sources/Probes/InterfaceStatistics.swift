/// One network interface's byte counters from sysfs, and the index that identifies this
/// incarnation of it.
public struct InterfaceCounters: Sendable, Equatable {
    public var name: String
    public var rxBytes: UInt64
    public var txBytes: UInt64
    /// The kernel's interface index. A tap removed and created again under the same name (the VM
    /// restarted) gets a new one, so its counters starting again from 0 are not read as a reset.
    public var ifindex: UInt64

    public init(name: String, rxBytes: UInt64, txBytes: UInt64, ifindex: UInt64) {
        self.name = name
        self.rxBytes = rxBytes
        self.txBytes = txBytes
        self.ifindex = ifindex
    }
}

/// Interface names as the kernel accepts them.
public enum InterfaceName {
    /// IFNAMSIZ less the terminating NUL.
    public static let maximumLength = 15

    /// Refuses what the kernel's dev_valid_name (net/core/dev.c) refuses — empty, longer than 15
    /// bytes, "." or "..", or containing '/', ':' or white space — and NUL, so that a name from a
    /// configuration or an API can never make a sysfs path that leaves /sys/class/net/<name>.
    public static func validate(_ name: String) throws(ProbeError) {
        let bytes = Array(name.utf8)
        func refuse(_ reason: String) -> ProbeError { .invalid(path: name, reason: "not a valid interface name: \(reason)") }
        guard !bytes.isEmpty else { throw refuse("empty") }
        guard bytes.count <= maximumLength else { throw refuse("longer than \(maximumLength) bytes") }
        guard name != ".", name != ".." else { throw refuse("'.' and '..' are refused") }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "/"): throw refuse("contains '/'")
            case ASCII.colon: throw refuse("contains ':'")
            case 0: throw refuse("contains NUL")
            // isspace(3) in the C locale: space, \t, \n, \v, \f, \r.
            case ASCII.space, 0x09...0x0D: throw refuse("contains white space")
            default: continue
            }
        }
    }
}

extension SysFS {
    /// `/sys/class/net/<name>`'s ifindex and statistics/rx_bytes and tx_bytes.
    ///
    /// These are the counters /proc/net/dev prints, read for one interface without formatting the
    /// whole table. For a VM's tap they are seen from the host: rx is what the VM sent, tx what it
    /// received. sysfs shows the network namespace of whoever mounted it, so the agent's /sys must
    /// be mounted in the namespace that holds the taps. Throws `.missing` when there is no such
    /// interface and `.invalid` for a name the kernel would refuse.
    public func interfaceCounters(_ name: String) throws(ProbeError) -> InterfaceCounters {
        try InterfaceName.validate(name)
        let path = path("class/net/" + name)
        guard let interface = try OpenDirectory.open(path) else { throw .missing(path: path) }
        func counter(_ file: String) throws(ProbeError) -> UInt64 {
            // Gone between opening the directory and reading the file: the interface was removed.
            guard let bytes = try interface.read(file) else { throw .missing(path: interface.filePath(file)) }
            return try SingleValue.parseCounter(bytes, path: interface.filePath(file))
        }
        let ifindex = try counter("ifindex")
        return InterfaceCounters(
            name: name, rxBytes: try counter("statistics/rx_bytes"), txBytes: try counter("statistics/tx_bytes"),
            ifindex: ifindex)
    }
}
