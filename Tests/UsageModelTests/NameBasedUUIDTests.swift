import Testing
import UsageModel

/// UUID v5 (RFC 9562 §5.5) against published vectors and its own invariants. Event ids are derived
/// from these bytes, so a change here would re-identify every event a consumer has already deduped.
@Suite struct NameBasedUUIDTests {
    /// 6ba7b810-9dad-11d1-80b4-00c04fd430c8, the DNS namespace of RFC 9562 Appendix A / RFC 4122.
    static let dnsNamespace: [UInt8] = [
        0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
    ]
    /// 6ba7b811-9dad-11d1-80b4-00c04fd430c8, the URL namespace.
    static let urlNamespace: [UInt8] = [
        0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
    ]

    @Test func rfc9562TestVector() {
        // RFC 9562 Appendix A.4: UUIDv5 of "www.example.com" in the DNS namespace.
        #expect(NameBasedUUID.v5(namespace: Self.dnsNamespace, name: "www.example.com")
            == "2ed6657d-e927-568b-95e1-2665a8aea6a2")
    }

    /// Further vectors computed independently with Python's `uuid.uuid5`.
    @Test(arguments: [
        (NameBasedUUIDTests.dnsNamespace, "python.org", "886313e1-3b8a-5372-9b90-0c9aee199e5d"),
        (NameBasedUUIDTests.urlNamespace, "", "1b4db7eb-4057-5ddf-91e0-36dec72071f5"),
    ])
    func pythonVectors(namespace: [UInt8], name: String, expected: String) {
        #expect(NameBasedUUID.v5(namespace: namespace, name: name) == expected)
    }

    /// hostmeter's namespace is fixed forever; these ids were computed with Python's
    /// `uuid.uuid5(UUID("3d6a0e52-7b1f-4c8e-9a41-5f2d88c3176b"), name)`, the name hashed as UTF-8.
    @Test func hostmeterNamespaceIsPinned() {
        #expect(NameBasedUUID.v5(name: "resource_usage\nhost-7\nvm-42\n1763726400\n1763726430")
            == "025e0578-ef92-562b-ba05-67da19f411dd")
        #expect(NameBasedUUID.v5(name: "resource_usage\nhôst-ü\nvm-😀\n-30\n0")
            == "c7010c34-ba0e-5319-9d13-e76bbe16a907")
    }

    @Test(arguments: ["", "a", "www.example.com", "hôst-ü vm-😀", String(repeating: "x", count: 1000)])
    func versionNibbleAndVariantBits(name: String) throws {
        for namespace in [Self.dnsNamespace, Self.urlNamespace, NameBasedUUID.hostmeterNamespace] {
            let text = NameBasedUUID.v5(namespace: namespace, name: name)
            let bytes = try #require(Self.bytes(of: text), "not 8-4-4-4-12 lower-case hex: \(text)")
            #expect(bytes[6] >> 4 == 5, "version nibble of \(text)")
            #expect(bytes[8] >> 6 == 0b10, "variant bits of \(text)")
        }
    }

    @Test func theNamespaceAndTheNameBothMatter() {
        let id = NameBasedUUID.v5(namespace: Self.dnsNamespace, name: "www.example.com")
        #expect(NameBasedUUID.v5(namespace: Self.urlNamespace, name: "www.example.com") != id)
        #expect(NameBasedUUID.v5(namespace: Self.dnsNamespace, name: "www.example.org") != id)
        #expect(NameBasedUUID.v5(namespace: Self.dnsNamespace, name: "www.example.com") == id)
    }

    /// The 16 bytes of a lower-case 8-4-4-4-12 UUID text, or nil if it is not one.
    static func bytes(of text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count == 36 else { return nil }
        var bytes: [UInt8] = []
        var nibbles: [UInt8] = []
        for (index, character) in utf8.enumerated() {
            if [8, 13, 18, 23].contains(index) {
                guard character == UInt8(ascii: "-") else { return nil }
                continue
            }
            switch character {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibbles.append(character - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibbles.append(character - UInt8(ascii: "a") + 10)
            default: return nil
            }
            if nibbles.count == 2 {
                bytes.append(nibbles[0] << 4 | nibbles[1])
                nibbles.removeAll()
            }
        }
        return bytes.count == 16 ? bytes : nil
    }
}
