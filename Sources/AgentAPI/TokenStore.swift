import Crypto
public import Foundation
import Yams
import InputGuards

/// Who a request is: the operator's admin, a monitoring system that may read `/health` and
/// `/metrics` only, or a user who may see only their own instances.
public enum APIRole: Sendable, Equatable, CustomStringConvertible {
    case admin
    /// Prometheus and health checkers: `/health` and `/metrics`, nothing else.
    case metrics
    case user(String)

    public init?(_ text: String) {
        if text == "admin" {
            self = .admin
        } else if text == "metrics" {
            self = .metrics
        } else if text.hasPrefix("user:"), text.utf8.count > "user:".utf8.count {
            self = .user(String(text.dropFirst("user:".count)))
        } else {
            return nil
        }
    }

    /// Equal as bytes: user ids are compared by their UTF-8, never by Unicode canonical
    /// equivalence (Swift's `==` on String), so `e\u{301}ve` is not `\u{e9}ve`.
    public static func == (lhs: APIRole, rhs: APIRole) -> Bool {
        switch (lhs, rhs) {
        case (.admin, .admin), (.metrics, .metrics): true
        case (.user(let left), .user(let right)): left.utf8.elementsEqual(right.utf8)
        default: false
        }
    }

    /// Whether this is the user `userID`, comparing the ids as bytes.
    public func isUser(_ userID: String) -> Bool {
        if case .user(let own) = self { return own.utf8.elementsEqual(userID.utf8) }
        return false
    }

    public var description: String {
        switch self {
        case .admin: "admin"
        case .metrics: "metrics"
        case .user(let id): "user:\(id)"
        }
    }
}

/// A tokens file that cannot be used, naming the file and what is wrong.
public struct TokenFileError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var message: String
    public var description: String { "\(file): \(message)" }
}

/// The API's bearer tokens: the hex SHA-256 of each token, mapped to its role.
///
/// The file holds no token, only digests, so it can be read by more than root. A presented token is
/// hashed and compared against every digest in constant time, so neither the match nor its position
/// leaks through timing.
public struct TokenStore: Sendable {
    private let entries: [(digest: [UInt8], role: APIRole)]

    /// No tokens: reads are open to whoever reaches the listen address, changes are refused.
    public static let open = TokenStore(entries: [])

    public var isEnabled: Bool { !entries.isEmpty }
    public var count: Int { entries.count }

    private init(entries: [(digest: [UInt8], role: APIRole)]) {
        self.entries = entries
    }

    /// Reads a YAML or JSON map from hex SHA-256 digests to roles (`admin`, `metrics` or
    /// `user:<user_id>`). A file that holds no token is an error: a configured tokens file never
    /// turns authentication off.
    public static func load(path: String) throws(TokenFileError) -> TokenStore {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw TokenFileError(file: path, message: "cannot read: \(error.localizedDescription)")
        }
        return try parse(text, file: path)
    }

    /// Parses a tokens file's text (JSON is YAML too); it must hold at least one token.
    public static func parse(_ text: String, file: String = "<tokens>") throws(TokenFileError) -> TokenStore {
        try YAMLGuard.check(text) { TokenFileError(file: file, message: "\($0)") }
        let loaded: Any?
        do {
            loaded = try Yams.load(yaml: text)
        } catch {
            throw TokenFileError(file: file, message: "not valid YAML or JSON: \(error)")
        }
        guard let map = loaded as? [AnyHashable: Any] else {
            if loaded == nil || loaded is NSNull { throw TokenFileError(file: file, message: Self.emptyMessage) }
            throw TokenFileError(file: file, message: "expected a map from token SHA-256 (hex) to role")
        }
        guard !map.isEmpty else { throw TokenFileError(file: file, message: Self.emptyMessage) }
        var entries: [(digest: [UInt8], role: APIRole)] = []
        for (key, value) in map {
            let digestText = "\(key.base)".lowercased()
            guard let digest = Self.hexBytes(digestText), digest.count == SHA256.byteCount else {
                throw TokenFileError(
                    file: file,
                    message: "key \"\(Self.redacted(digestText))\" is not a hex SHA-256 digest (64 hex digits); "
                        + "store `printf %s TOKEN | sha256sum`, never the token")
            }
            guard let roleText = value as? String, let role = APIRole(roleText) else {
                throw TokenFileError(
                    file: file,
                    message: "the role of \(digestText.prefix(12))… must be admin, metrics or user:<user_id>")
            }
            entries.append((digest, role))
        }
        return TokenStore(entries: entries)
    }

    /// A store from tokens themselves (tests and tools).
    public static func hashing(_ tokens: [String: APIRole]) -> TokenStore {
        TokenStore(entries: tokens.map { (Array(SHA256.hash(data: Data($0.key.utf8))), $0.value) })
    }

    /// The hex SHA-256 of a token, as the tokens file stores it.
    public static func digest(of token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The role of `token`, or nil. Every digest is compared in full, whatever matches.
    public func role(for token: some StringProtocol) -> APIRole? {
        let presented = Array(SHA256.hash(data: Data(token.utf8)))
        var found: APIRole?
        for entry in entries {
            var difference: UInt8 = 0
            for index in 0..<SHA256.byteCount {
                difference |= entry.digest[index] ^ presented[index]
            }
            if difference == 0, found == nil {
                found = entry.role
            }
        }
        return found
    }

    private static func hexBytes(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count.isMultiple(of: 2) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    private static let emptyMessage =
        "holds no token; a tokens file needs at least one entry (token SHA-256 → admin, metrics or user:<user_id>), "
        + "or remove api.tokens_file"

    /// A key that may be a token pasted by mistake is shown by its length only.
    private static func redacted(_ text: String) -> String { "<\(text.count) characters>" }
}
