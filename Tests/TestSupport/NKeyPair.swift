public import Crypto
public import Foundation

/// A NATS NKey made for a test: an Ed25519 key from swift-crypto, written the way the NKeys format
/// writes it (a prefix byte, the key, a CRC-16/XMODEM of both, little-endian, in RFC 4648 base32
/// without padding): the public key (`U…` for a user) for the server's configuration or a JWT, the
/// seed (`SU…`) for the client's seed or credentials file.
public struct NKeyPair: Sendable {
    /// Whose key it is: the public key's first letter.
    public enum Role: UInt8, Sendable {
        case operator_ = 112  // 14 << 3: "O"
        case account = 0  // "A"
        case user = 160  // 20 << 3: "U"
    }

    public let publicKey: String
    public let seed: String
    private let key: Curve25519.Signing.PrivateKey

    /// The key of `seed` (32 random bytes when nil).
    public init(seed raw: Data? = nil, role: Role = .user) throws {
        key = try raw.map { try Curve25519.Signing.PrivateKey(rawRepresentation: $0) } ?? Curve25519.Signing.PrivateKey()
        let prefix = role.rawValue
        let seedPrefix: UInt8 = 18 << 3
        publicKey = Self.encode([prefix] + Array(key.publicKey.rawRepresentation))
        seed = Self.encode([seedPrefix | (prefix >> 5), (prefix & 31) << 3] + Array(key.rawRepresentation))
    }

    /// An Ed25519 signature of `data` (what NKeys' `Sign` makes).
    public func sign(_ data: Data) throws -> Data {
        try key.signature(for: data)
    }

    public static func encode(_ bytes: [UInt8]) -> String {
        let crc = crc16(bytes)
        return base32(bytes + [UInt8(crc & 0xFF), UInt8(crc >> 8)])
    }

    /// CRC-16/XMODEM: polynomial 0x1021, initial value 0.
    static func crc16(_ bytes: [UInt8]) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return crc
    }

    /// RFC 4648 base32, no padding.
    public static func base32(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var output = ""
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                output.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { output.append(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return output
    }
}
