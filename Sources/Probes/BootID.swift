/// /proc/sys/kernel/random/boot_id: a random UUID the kernel makes at each boot.
///
/// Metering compares it between samples: a different value means the host rebooted, every
/// cumulative counter started again from zero, and deltas across it are meaningless.
public enum BootID {
    public static let path = "/proc/sys/kernel/random/boot_id"

    public static func parse(_ text: String) throws(ProbeError) -> String {
        try parse(Array(text.utf8))
    }

    /// The UUID in its canonical lower-case 8-4-4-4-12 form.
    public static func parse(_ bytes: [UInt8], path: String = BootID.path) throws(ProbeError) -> String {
        guard let line = KernelText.lines(bytes).first else {
            throw .malformed(path: path, line: 0, reason: "empty file")
        }
        let value = KernelText.trimmed(line.bytes)
        guard value.count == 36 else {
            throw .malformed(path: path, line: 1, reason: "expected a 36-character UUID, got '\(line.excerpt)'")
        }
        for (offset, byte) in value.enumerated() {
            let isDashPosition = offset == 8 || offset == 13 || offset == 18 || offset == 23
            let valid: Bool =
                isDashPosition
                ? byte == ASCII.minus
                : (byte >= ASCII.zero && byte <= ASCII.nine) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
                    || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
            guard valid else {
                throw .malformed(path: path, line: 1, reason: "not a UUID: '\(line.excerpt)'")
            }
        }
        return KernelText.string(value).lowercased()
    }
}
