/// A file that holds one number and a newline, as cgroup and sysfs attribute files do
/// (`memory.current`, `cpuacct.usage`, `statistics/rx_bytes`, `ifindex`, `/sys/dev/block/M:m/size`).
public enum SingleValue {
    /// The number in `bytes`, or nil for `max`, which cgroup v2 limits print when there is none.
    public static func parse(_ bytes: [UInt8], path: String) throws(ProbeError) -> UInt64? {
        let value = try token(bytes, path: path)
        if value.elementsEqual("max".utf8) { return nil }
        guard let number = KernelText.uint64(value) else {
            throw .malformed(
                path: path, line: 1,
                reason: "expected an unsigned 64-bit integer or 'max', got '\(KernelText.string(value.prefix(40)))'")
        }
        return number
    }

    /// The number in `bytes`, where `max` makes no sense (a counter, an index, a size).
    public static func parseCounter(_ bytes: [UInt8], path: String) throws(ProbeError) -> UInt64 {
        let value = try token(bytes, path: path)
        guard let number = KernelText.uint64(value) else {
            throw .malformed(
                path: path, line: 1,
                reason: "expected an unsigned 64-bit integer, got '\(KernelText.string(value.prefix(40)))'")
        }
        return number
    }

    /// The first line without blanks; a file with a second non-blank line is not a single value.
    private static func token(_ bytes: [UInt8], path: String) throws(ProbeError) -> ArraySlice<UInt8> {
        guard !bytes.isEmpty else { throw .malformed(path: path, line: 0, reason: "empty file") }
        let end = bytes.firstIndex(of: ASCII.newline) ?? bytes.endIndex
        let first = KernelText.trimmed(bytes[..<end])
        guard !first.isEmpty else { throw .malformed(path: path, line: 1, reason: "empty line, expected a number") }
        if end < bytes.endIndex {
            var line = 2
            var start = end + 1
            while start < bytes.endIndex {
                let next = bytes[start...].firstIndex(of: ASCII.newline) ?? bytes.endIndex
                guard KernelText.trimmed(bytes[start..<next]).isEmpty else {
                    throw .malformed(path: path, line: line, reason: "expected a single value, found more lines")
                }
                line += 1
                start = next + 1
            }
        }
        return first
    }
}
