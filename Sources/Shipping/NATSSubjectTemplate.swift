public import Outbox

/// The subject a `nats` sink publishes each event to (`sink.nats.subject`), from a template such as
/// `usage.{org_id}.{user_id}.{instance_id}`, so that a stream, a consumer or a permission can take
/// one organisation's, user's or VM's events by subject.
///
/// A template is dot-separated tokens of letters, digits, `-` and `_`, and placeholders:
/// `{host_id}`, `{instance_id}`, `{user_id}`, `{org_id}`, `{event_type}`. A placeholder becomes its
/// value with every byte outside letters, digits, `-` and `_` written `%XX` (so an id with a dot,
/// a space or a wildcard can neither add a token nor match more than itself), and `_` when the
/// event has no such value (a host with no `org_id`). Every subject is a literal one: no wildcard.
public struct NATSSubjectTemplate: Sendable, Equatable, CustomStringConvertible {
    public enum Field: String, Sendable, CaseIterable {
        case hostID = "host_id"
        case instanceID = "instance_id"
        case userID = "user_id"
        case orgID = "org_id"
        case eventType = "event_type"
    }

    enum Part: Sendable, Equatable {
        case literal(String)
        case field(Field)
    }

    /// A template that is not one, and why.
    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let template: String
        public let reason: String
        public var description: String { "subject template \"\(template)\": \(reason)" }
    }

    /// The template as configured.
    public let description: String
    let parts: [Part]

    /// The longest template accepted, in bytes; values are not counted.
    public static let maximumLength = 255

    public init(_ template: String) throws(Invalid) {
        func invalid(_ reason: String) -> Invalid { Invalid(template: template, reason: reason) }
        guard !template.isEmpty else { throw invalid("it is empty") }
        guard template.utf8.count <= Self.maximumLength else { throw invalid("longer than \(Self.maximumLength) bytes") }
        var parts: [Part] = []
        var literal = ""
        var tokenIsEmpty = true
        var rest = Substring(template)
        while let character = rest.first {
            rest = rest.dropFirst()
            switch character {
            case ".":
                guard !tokenIsEmpty else { throw invalid("an empty token (two dots, or a dot at an end)") }
                literal.append(".")
                tokenIsEmpty = true
            case "{":
                guard let close = rest.firstIndex(of: "}") else { throw invalid("a `{` without its `}`") }
                let name = String(rest[..<close])
                guard let field = Field(rawValue: name) else {
                    throw invalid(
                        "unknown placeholder {\(name)}; known: "
                            + Field.allCases.map { "{\($0.rawValue)}" }.joined(separator: ", "))
                }
                if !literal.isEmpty { parts.append(.literal(literal)) }
                literal = ""
                parts.append(.field(field))
                tokenIsEmpty = false
                rest = rest[rest.index(after: close)...]
            default:
                guard Self.isPlain(character) else {
                    throw invalid(
                        "\"\(character)\" is not allowed; a token is letters, digits, `-` and `_` (no wildcard, no space)")
                }
                literal.append(character)
                tokenIsEmpty = false
            }
        }
        guard !tokenIsEmpty else { throw invalid("an empty token (two dots, or a dot at an end)") }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.description = template
        self.parts = parts
    }

    /// The subject of `event` from the host `hostID`.
    public func subject(for event: OutboxEvent, hostID: String) -> String {
        var subject = ""
        for part in parts {
            switch part {
            case .literal(let text): subject += text
            case .field(let field):
                let value: String?
                switch field {
                case .hostID: value = hostID
                case .instanceID: value = event.instanceID
                case .userID: value = event.userID
                case .orgID: value = event.orgID
                case .eventType: value = event.eventType
                }
                subject += Self.token(value)
            }
        }
        return subject
    }

    /// `value` as one subject token: `_` when absent or empty, else each byte outside letters,
    /// digits, `-` and `_` as `%XX`.
    static func token(_ value: String?) -> String {
        guard let value, !value.isEmpty else { return "_" }
        let hex = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            if isPlain(byte) {
                bytes.append(byte)
            } else {
                bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func isPlain(_ character: Character) -> Bool {
        guard character.isASCII, let byte = character.asciiValue else { return false }
        return isPlain(byte)
    }

    private static func isPlain(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }
}
