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
    /// interface and `.invalid` for a name the kernel would refuse. Opens and closes the files;
    /// `interfaceCounters(_:kept:buffer:)` keeps them open.
    public func interfaceCounters(_ name: String) throws(ProbeError) -> InterfaceCounters {
        try interfaceCounters(name, kept: KeptInterface(), buffer: ReadBuffer(capacity: 256))
    }

    /// As `interfaceCounters(_:)`, through the three descriptors `kept` holds from earlier reads of
    /// the same name. They stay on the device they were opened on: when it is deleted (a VM's tap
    /// when the VM stops) reads fail with ENODEV, and the interface is looked up by name again,
    /// within this call, finding the new device (a new ifindex) or none (`.missing`).
    public func interfaceCounters(
        _ name: String, kept: KeptInterface, buffer: ReadBuffer
    ) throws(ProbeError) -> InterfaceCounters {
        if let files = kept.files, kept.name == name {
            do throws(ProbeError) {
                return try Self.counters(name, files, buffer: buffer)
            } catch {
                kept.files = nil
                guard case .unreadable = error else { throw error }
            }
        }
        kept.files = nil
        try InterfaceName.validate(name)
        kept.name = name
        let path = path("class/net/" + name)
        guard let interface = try OpenDirectory.open(path) else { throw .missing(path: path) }
        var files: [KeptFile] = []
        for file in KeptInterface.names {
            // Gone between opening the directory and opening the file: the interface was removed.
            guard let opened = try KeptFile.open(file, in: interface) else { throw .missing(path: interface.filePath(file)) }
            files.append(opened)
        }
        let counters = try Self.counters(name, files, buffer: buffer)
        if files.allSatisfy(\.isKept) { kept.files = files }
        return counters
    }

    private static func counters(_ name: String, _ files: [KeptFile], buffer: ReadBuffer) throws(ProbeError) -> InterfaceCounters {
        func counter(_ file: KeptFile) throws(ProbeError) -> UInt64 {
            try SingleValue.parseCounter(file.read(into: buffer), path: file.path)
        }
        let ifindex = try counter(files[0])
        return InterfaceCounters(name: name, rxBytes: try counter(files[1]), txBytes: try counter(files[2]), ifindex: ifindex)
    }
}

/// The descriptors of one interface's ifindex, rx_bytes and tx_bytes, kept between reads by
/// `SysFS.interfaceCounters(_:kept:buffer:)`: 3 per interface, closed when released. Not
/// thread-safe: one owner reads it at a time.
public final class KeptInterface {
    static let names = ["ifindex", "statistics/rx_bytes", "statistics/tx_bytes"]

    /// The name the files were opened for.
    fileprivate(set) var name: String?
    fileprivate(set) var files: [KeptFile]?

    public init() {}

    /// Descriptors held now.
    public var descriptorCount: Int { files?.count ?? 0 }
}
