import Crypto

/// Name-based UUIDs, version 5 (RFC 9562 §5.5): SHA-1 of a namespace UUID and a name.
///
/// The same namespace and name always give the same UUID, on any host and in any release; that is
/// what makes an event's id deterministic and a resend safe.
public enum NameBasedUUID {
    /// hostmeter's namespace for event ids. Fixed forever: changing it changes every event id.
    public static let hostmeterNamespace: [UInt8] = [
        0x3d, 0x6a, 0x0e, 0x52, 0x7b, 0x1f, 0x4c, 0x8e, 0x9a, 0x41, 0x5f, 0x2d, 0x88, 0xc3, 0x17, 0x6b,
    ]

    /// The lower-case 8-4-4-4-12 text of the version-5 UUID for `name` in `namespace`.
    public static func v5(namespace: [UInt8] = hostmeterNamespace, name: String) -> String {
        precondition(namespace.count == 16, "a namespace UUID is 16 bytes")
        var hasher = Insecure.SHA1()
        hasher.update(data: namespace)
        hasher.update(data: Array(name.utf8))
        var bytes = Array(hasher.finalize().prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        return format(bytes)
    }

    static func format(_ bytes: [UInt8]) -> String {
        let hex: [Character] = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append("-") }
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        return text
    }
}
