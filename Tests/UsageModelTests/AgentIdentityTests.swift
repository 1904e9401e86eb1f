import Crypto
import Foundation
import Testing
import UsageModel

/// The agent's Ed25519 identity: RFC 8032's test vectors, the PKCS #8 and SPKI PEM forms that
/// OpenSSL reads and writes, and a refusal that names what a file is not.
@Suite struct AgentIdentityTests {
    static func bytes(_ hex: String) -> Data {
        var data = Data()
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            data.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return data
    }

    /// RFC 8032 §7.1, TEST 1 to 3: secret key, public key, message, signature.
    static let vectors: [(secret: String, public: String, message: String, signature: String)] = [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ]

    /// The PKCS #8 PEM of a raw Ed25519 secret key (RFC 8410 §7: a fixed 16-byte DER prefix).
    static func pem(secret: Data) -> String {
        let der = bytes("302e020100300506032b657004220420") + secret
        return "-----BEGIN PRIVATE KEY-----\n\(der.base64EncodedString())\n-----END PRIVATE KEY-----\n"
    }

    @Test func rfc8032VectorsSignAndVerify() throws {
        for vector in Self.vectors {
            let identity = try SigningIdentity(pem: Self.pem(secret: Self.bytes(vector.secret)))
            #expect(identity.publicIdentity.publicKey.rawRepresentation == Self.bytes(vector.public))
            let message = Self.bytes(vector.message)
            let signature = identity.signature(of: message)
            #expect(signature == Self.bytes(vector.signature))
            #expect(identity.publicIdentity.isValidSignature(signature, of: message))
            var wrong = signature
            wrong[0] ^= 1
            #expect(!identity.publicIdentity.isValidSignature(wrong, of: message))
            #expect(!identity.publicIdentity.isValidSignature(signature, of: message + Data([0])))
        }
    }

    @Test func theKeyRoundTripsThroughItsPEMForms() throws {
        let identity = SigningIdentity.generate()
        #expect(identity.pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        let again = try SigningIdentity(pem: identity.pem)
        #expect(again.publicIdentity == identity.publicIdentity)
        let fromPEM = try PublicIdentity(text: identity.publicIdentity.publicKeyPEM)
        let fromBase64 = try PublicIdentity(text: identity.publicIdentity.publicKeyBase64)
        #expect(fromPEM == identity.publicIdentity && fromBase64 == identity.publicIdentity)
        // RFC 8032 TEST 1's public key as SPKI PEM, as `openssl pkey -pubout` writes it.
        let test1 = try SigningIdentity(pem: Self.pem(secret: Self.bytes(Self.vectors[0].secret)))
        #expect(
            test1.publicIdentity.publicKeyPEM
                == "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n")
        #expect(test1.publicIdentity.keyID == "sha256:" + SHA256.hash(data: Self.bytes(Self.vectors[0].public)).map { String(format: "%02x", $0) }.joined())
    }

    @Test func whatIsNotAnEd25519KeyIsRefusedSayingWhat() {
        let cases: [(String, String)] = [
            ("", "not a PKCS #8 PEM private key"),
            ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n",
             "not a PKCS #8 PEM private key"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not an Ed25519 private key"),
        ]
        for (text, reason) in cases {
            #expect {
                _ = try SigningIdentity(pem: text)
            } throws: { error in
                (error as? IdentityKeyError)?.reason.contains(reason) == true
            }
        }
        #expect(throws: IdentityKeyError.self) { _ = try PublicIdentity(text: "c2hvcnQ=") }
    }

    @Test func theDocumentNamesTheKey() throws {
        let identity = try SigningIdentity(pem: Self.pem(secret: Self.bytes(Self.vectors[0].secret)))
        let document = identity.publicIdentity.document(hostID: "host-1", keyFile: nil)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(document)) as? [String: String])
        #expect(object["algorithm"] == "Ed25519" && object["host_id"] == "host-1" && object["key_file"] == nil)
        #expect(object["public_key"] == "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
        #expect(object["key_id"] == identity.publicIdentity.keyID)
        #expect(object["public_key_pem"] == identity.publicIdentity.publicKeyPEM)
    }
}
