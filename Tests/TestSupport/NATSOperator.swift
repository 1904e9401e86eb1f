public import Crypto
public import Foundation

/// NATS's decentralized authentication for a test, made here without `nsc`: an operator, a system
/// account and an account with JetStream, each an NKey with a JWT (nats-io/jwt v2: header
/// `{"typ":"JWT","alg":"ed25519-nkey"}`, claims signed by the issuer's key), the server
/// configuration that trusts them (`operator`, `resolver: MEMORY`, `resolver_preload`), and user
/// credentials files (`.creds`: a user JWT and the user's seed) as `nsc` writes them.
public struct NATSOperator: Sendable {
    public let operatorKey: NKeyPair
    public let systemAccount: NKeyPair
    public let account: NKeyPair
    let operatorJWT: String
    let systemAccountJWT: String
    let accountJWT: String

    public init() throws {
        operatorKey = try NKeyPair(role: .operator_)
        systemAccount = try NKeyPair(role: .account)
        account = try NKeyPair(role: .account)
        operatorJWT = try Self.jwt(
            issuer: operatorKey, subject: operatorKey.publicKey, name: "test-operator",
            nats: ["type": "operator", "version": 2, "system_account": systemAccount.publicKey])
        systemAccountJWT = try Self.jwt(
            issuer: operatorKey, subject: systemAccount.publicKey, name: "SYS",
            nats: ["type": "account", "version": 2, "limits": Self.unlimited(jetStream: false)])
        accountJWT = try Self.jwt(
            issuer: operatorKey, subject: account.publicKey, name: "billing",
            nats: ["type": "account", "version": 2, "limits": Self.unlimited(jetStream: true)])
    }

    /// nats-server's configuration for trusting the operator and knowing both accounts.
    public var serverConfig: String {
        """
        operator: \(operatorJWT)
        system_account: \(systemAccount.publicKey)
        resolver: MEMORY
        resolver_preload: {
            \(systemAccount.publicKey): \(systemAccountJWT)
            \(account.publicKey): \(accountJWT)
        }

        """
    }

    /// A credentials file's text for a new user of `signer` (the account by default; another
    /// account the server does not know makes credentials it refuses).
    public func credentials(signedBy signer: NKeyPair? = nil) throws -> String {
        let user = try NKeyPair(role: .user)
        let userJWT = try Self.jwt(
            issuer: signer ?? account, subject: user.publicKey, name: "hostmeter",
            nats: ["type": "user", "version": 2, "pub": [String: String](), "sub": [String: String](), "subs": -1,
                   "data": -1, "payload": -1])
        return """
            -----BEGIN NATS USER JWT-----
            \(userJWT)
            ------END NATS USER JWT------

            ************************* IMPORTANT *************************
            NKEY Seed printed below can be used to sign and prove identity.
            NKEYs are sensitive and should be treated as secrets.

            -----BEGIN USER NKEY SEED-----
            \(user.seed)
            ------END USER NKEY SEED------

            *************************************************************

            """
    }

    static func unlimited(jetStream: Bool) -> [String: any Sendable] {
        var limits: [String: any Sendable] = [
            "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true, "conn": -1,
            "leaf": -1,
        ]
        if jetStream {
            limits["mem_storage"] = -1
            limits["disk_storage"] = -1
            limits["streams"] = -1
            limits["consumer"] = -1
        }
        return limits
    }

    /// A JWT of `issuer` about `subject`: `jti` is the base32 SHA-256 of the claims without it.
    static func jwt(issuer: NKeyPair, subject: String, name: String, nats: [String: any Sendable]) throws -> String {
        var claims: [String: Any] = [
            "iat": Int(Date().timeIntervalSince1970), "iss": issuer.publicKey, "name": name, "sub": subject, "nats": nats,
        ]
        let unnamed = try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])
        claims["jti"] = NKeyPair.base32(Array(SHA256.hash(data: unnamed)))
        let header = try JSONSerialization.data(withJSONObject: ["typ": "JWT", "alg": "ed25519-nkey"], options: [.sortedKeys])
        let body = try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])
        let signed = base64URL(header) + "." + base64URL(body)
        return signed + "." + base64URL(try issuer.sign(Data(signed.utf8)))
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
