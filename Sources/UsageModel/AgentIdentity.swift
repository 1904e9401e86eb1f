public import Crypto
import _CryptoExtras
public import Foundation

/// The agent's signing identity: an Ed25519 key (RFC 8032) that signs its usage commitments. The
/// private key never leaves the host; the public half (`PublicIdentity`) is what a billing team
/// records per host and checks signatures against.
public struct SigningIdentity: Sendable {
    public let privateKey: Curve25519.Signing.PrivateKey
    public let publicIdentity: PublicIdentity

    public init(privateKey: Curve25519.Signing.PrivateKey) {
        self.privateKey = privateKey
        publicIdentity = PublicIdentity(privateKey.publicKey)
    }

    /// A new key from the system's random source.
    public static func generate() -> SigningIdentity {
        SigningIdentity(privateKey: Curve25519.Signing.PrivateKey())
    }

    /// Reads a PKCS #8 PEM private key (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey
    /// -algorithm ed25519` writes it); anything else is refused saying what it is not.
    public init(pem: String) throws(IdentityKeyError) {
        guard pem.contains("-----BEGIN PRIVATE KEY-----") else {
            throw IdentityKeyError("not a PKCS #8 PEM private key (no \"-----BEGIN PRIVATE KEY-----\" line)")
        }
        do {
            self.init(privateKey: try Curve25519.Signing.PrivateKey(pemRepresentation: pem))
        } catch {
            throw IdentityKeyError("not an Ed25519 private key: \(error)")
        }
    }

    /// The key as PKCS #8 PEM, which `openssl pkey` reads.
    public var pem: String { privateKey.pemRepresentation + "\n" }

    /// The Ed25519 signature of `message` (64 bytes; Ed25519 signs deterministically).
    public func signature(of message: some DataProtocol) -> Data {
        // Signing with a valid key cannot fail; swift-crypto's throwing signature is a formality.
        (try? privateKey.signature(for: message)) ?? Data()
    }
}

/// The public half of an agent's identity, as `GET /identity` and `hostmeter identity` show it.
public struct PublicIdentity: Sendable, Equatable {
    public static let algorithm = "Ed25519"
    public let publicKey: Curve25519.Signing.PublicKey

    public init(_ publicKey: Curve25519.Signing.PublicKey) {
        self.publicKey = publicKey
    }

    /// Reads a public key from its SPKI PEM (`-----BEGIN PUBLIC KEY-----`) or its 32 raw bytes in
    /// base64.
    public init(text: String) throws(IdentityKeyError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            if trimmed.hasPrefix("-----BEGIN PUBLIC KEY-----") {
                publicKey = try Curve25519.Signing.PublicKey(pemRepresentation: trimmed)
            } else if let raw = Data(base64Encoded: trimmed), raw.count == 32 {
                publicKey = try Curve25519.Signing.PublicKey(rawRepresentation: raw)
            } else {
                throw IdentityKeyError("neither a PEM public key nor 32 bytes in base64")
            }
        } catch let error as IdentityKeyError {
            throw error
        } catch {
            throw IdentityKeyError("not an Ed25519 public key: \(error)")
        }
    }

    public static func == (lhs: PublicIdentity, rhs: PublicIdentity) -> Bool {
        lhs.publicKey.rawRepresentation == rhs.publicKey.rawRepresentation
    }

    /// The 32 bytes of the key, in base64.
    public var publicKeyBase64: String { publicKey.rawRepresentation.base64EncodedString() }
    /// The key as SPKI PEM.
    public var publicKeyPEM: String { publicKey.pemRepresentation + "\n" }
    /// `sha256:` and the hex SHA-256 of the key's 32 bytes: the name commitments give the key.
    public var keyID: String {
        "sha256:" + SHA256.hash(data: publicKey.rawRepresentation).map { String(format: "%02x", $0) }.joined()
    }

    public func isValidSignature(_ signature: some DataProtocol, of message: some DataProtocol) -> Bool {
        publicKey.isValidSignature(signature, for: message)
    }

    /// The JSON object `GET /identity` answers and `hostmeter identity` prints, keys sorted.
    public func document(hostID: String, keyFile: String?) -> [UInt8] {
        var json = JSONBytes(capacity: 512, escapingSlashes: false)
        json.beginObject()
        json.member("algorithm", Self.algorithm)
        json.member("host_id", hostID)
        if let keyFile { json.member("key_file", keyFile) }
        json.member("key_id", keyID)
        json.member("public_key", publicKeyBase64)
        json.member("public_key_pem", publicKeyPEM)
        json.endObject()
        return json.bytes
    }
}

/// Why an identity key could not be read, made or used: the file (when there is one) and what is
/// wrong with it.
public struct IdentityKeyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String?
    public var reason: String

    public init(_ reason: String, path: String? = nil) {
        self.reason = reason
        self.path = path
    }

    public var description: String { path.map { "identity key \($0): \(reason)" } ?? reason }
}
