/// One line of /proc/PID/mountinfo (see proc(5)).
public struct MountInfo: Sendable, Equatable {
    public var mountID: Int
    public var parentID: Int
    public var major: UInt32
    public var minor: UInt32
    /// The root of the mount within its filesystem (not "/" for bind mounts of a subdirectory).
    public var root: String
    public var mountPoint: String
    public var mountOptions: String
    public var fsType: String
    public var source: String
    public var superOptions: String
}

/// /proc/self/mountinfo.
public enum Mountinfo {
    public static let path = "/proc/self/mountinfo"

    public static func parse(_ text: String) throws(ProbeError) -> [MountInfo] {
        try parse(Array(text.utf8))
    }

    /// Parses `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
    /// six fixed fields, zero or more optional fields up to a lone `-`, then type, source and
    /// super options. Paths have space, tab, newline and backslash escaped as octal (`\040`).
    public static func parse(_ bytes: [UInt8], path: String = Mountinfo.path) throws(ProbeError) -> [MountInfo] {
        var mounts: [MountInfo] = []
        for line in KernelText.lines(bytes) {
            if KernelText.trimmed(line.bytes).isEmpty { continue }
            // The separator is the first " - ": no field before it can be a lone "-" (paths start
            // with '/', optional fields are tag:value). After it, fields are split on single
            // spaces, since the source can be empty ("tmpfs  rw" for `mount -t tmpfs "" /x`).
            guard let dash = separatorIndex(line.bytes) else {
                throw .malformed(path: path, line: line.number, reason: "expected '… - fstype source options', got '\(line.excerpt)'")
            }
            let fields = KernelText.fields(line.bytes[line.bytes.startIndex..<dash])
            let tail = line.bytes[(dash + 3)...].split(separator: ASCII.space, maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count >= 6, tail.count >= 2, !tail[0].isEmpty else {
                throw .malformed(path: path, line: line.number, reason: "expected '… - fstype source options', got '\(line.excerpt)'")
            }
            guard let mountID = KernelText.int(fields[0]), let parentID = KernelText.int(fields[1]) else {
                throw .malformed(path: path, line: line.number, reason: "mount ids are not integers: '\(line.excerpt)'")
            }
            let device = fields[2]
            guard let colon = device.firstIndex(of: ASCII.colon),
                let major = KernelText.uint64(device[device.startIndex..<colon]).flatMap(UInt32.init(exactly:)),
                let minor = KernelText.uint64(device[(colon + 1)...]).flatMap(UInt32.init(exactly:))
            else {
                throw .malformed(path: path, line: line.number, reason: "bad major:minor '\(KernelText.string(device))'")
            }
            mounts.append(
                MountInfo(
                    mountID: mountID, parentID: parentID, major: major, minor: minor,
                    root: unescape(fields[3]), mountPoint: unescape(fields[4]),
                    mountOptions: KernelText.string(fields[5]), fsType: KernelText.string(tail[0]),
                    source: unescape(tail[1]),
                    superOptions: tail.count > 2 ? KernelText.string(KernelText.trimmed(tail[2])) : ""))
        }
        guard !mounts.isEmpty else {
            throw .malformed(path: path, line: 0, reason: "no mounts (truncated file?)")
        }
        return mounts
    }

    /// The index of the space that starts the first " - " of a line.
    static func separatorIndex(_ bytes: ArraySlice<UInt8>) -> Int? {
        var index = bytes.startIndex
        while index + 2 < bytes.endIndex {
            if bytes[index] == ASCII.space, bytes[index + 1] == ASCII.minus, bytes[index + 2] == ASCII.space {
                return index
            }
            index += 1
        }
        return nil
    }

    /// Undoes the kernel's `\ooo` octal escapes; a backslash not followed by three octal digits is kept.
    static func unescape(_ bytes: ArraySlice<UInt8>) -> String {
        guard bytes.contains(UInt8(ascii: "\\")) else { return KernelText.string(bytes) }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        func isOctal(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "7") }
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\"), index + 3 < bytes.endIndex,
                isOctal(bytes[index + 1]), isOctal(bytes[index + 2]), isOctal(bytes[index + 3])
            {
                let value =
                    (UInt16(bytes[index + 1] - 48) << 6) | (UInt16(bytes[index + 2] - 48) << 3) | UInt16(bytes[index + 3] - 48)
                if value <= 0xFF {
                    output.append(UInt8(value))
                    index += 4
                    continue
                }
            }
            output.append(byte)
            index += 1
        }
        return String(decoding: output, as: UTF8.self)
    }
}
