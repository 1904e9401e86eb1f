/// Writes compact JSON straight into bytes, for the records written on every sample: a meter's
/// checkpoint per instance per sample and a usage event per instance per period.
///
/// `JSONEncoder` builds a tree of boxed values through `Encoder`'s existential containers and then
/// serialises it; for these small fixed-shape records that machinery was most of their cost (about a
/// tenth of an idle agent's CPU, a quarter of the 1,000-VM bench). The output is byte for byte what
/// `JSONEncoder` with `.sortedKeys` (and, when asked, `.withoutEscapingSlashes`) writes, so stored
/// checkpoints, their `format` and the wire bytes stay as they were and `JSONDecoder` reads them back;
/// the types' tests compare the two encoders on generated values.
///
/// Callers write an object's keys in ascending UTF-8 order, which is the order `.sortedKeys` gives:
/// fixed keys in code (the comparison tests catch a misplaced one), dynamic ones through
/// `sortedKeys(_:)`.
public struct JSONBytes: Sendable {
    public private(set) var bytes: [UInt8]
    private let escapesSlashes: Bool
    /// Whether the next key or array element needs a comma before it.
    private var needsComma = false

    /// A value JSON cannot carry: `JSONEncoder` refuses NaN and infinities the same way.
    public struct NonConformingFloat: Error, CustomStringConvertible {
        public let key: String
        public let value: Double
        public var description: String { "\(key): \(value) is not representable in JSON" }
    }

    public init(capacity: Int = 512, escapingSlashes: Bool = true) {
        bytes = []
        bytes.reserveCapacity(capacity)
        escapesSlashes = escapingSlashes
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    public mutating func bool(_ value: Bool) {
        separate()
        if value { append("true") } else { append("false") }
        needsComma = true
    }

    /// The next member's key, escaped like any string.
    public mutating func key(_ key: String) {
        separate()
        writeString(key)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ value: String) {
        separate()
        writeString(value)
        needsComma = true
    }

    public mutating func null() {
        separate()
        append("null")
        needsComma = true
    }

    public mutating func integer<T: FixedWidthInteger>(_ value: T) {
        separate()
        writeDecimal(value)
        needsComma = true
    }

    /// A number as `JSONEncoder` writes a `Double`: its shortest round-trip form, without a
    /// trailing ".0".
    public mutating func double(_ value: Double, key: String) throws(NonConformingFloat) {
        guard value.isFinite else { throw NonConformingFloat(key: key, value: value) }
        separate()
        let text = value.description
        var utf8 = text.utf8[...]
        if utf8.count >= 2, utf8.last == UInt8(ascii: "0"), utf8.dropLast().last == UInt8(ascii: ".") {
            utf8 = utf8.dropLast(2)
        }
        bytes.append(contentsOf: utf8)
        needsComma = true
    }

    /// `key: value` for each of the optional members: the synthesized `Encodable` leaves a nil out.
    public mutating func member(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    public mutating func member<T: FixedWidthInteger>(_ name: String, _ value: T?) {
        guard let value else { return }
        key(name)
        integer(value)
    }

    public mutating func member(_ name: String, _ value: Double?) throws(NonConformingFloat) {
        guard let value else { return }
        key(name)
        try double(value, key: name)
    }

    /// Keys in the order `.sortedKeys` writes them: by their UTF-8 bytes.
    public static func sortedKeys<S: Sequence>(_ keys: S) -> [String] where S.Element == String {
        keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    private mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func writeDecimal<T: FixedWidthInteger>(_ value: T) {
        if value == 0 {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        // Digits of the magnitude, least significant first, in a fixed buffer: no String is made.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes hold UInt64.max's 20 digits
        var count = 0
        var magnitude = value.magnitude
        withUnsafeMutableBytes(of: &digits) { buffer in
            while magnitude != 0 {
                let (quotient, remainder) = magnitude.quotientAndRemainder(dividingBy: 10)
                buffer[count] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: remainder)
                count &+= 1
                magnitude = quotient
            }
        }
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        withUnsafeBytes(of: &digits) { buffer in
            var index = count
            while index > 0 {
                index &-= 1
                bytes.append(buffer[index])
            }
        }
    }

    private mutating func writeString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): append("\\\"")
            case UInt8(ascii: "\\"): append("\\\\")
            case UInt8(ascii: "/") where escapesSlashes: append("\\/")
            case 0x08: append("\\b")
            case 0x0C: append("\\f")
            case 0x0A: append("\\n")
            case 0x0D: append("\\r")
            case 0x09: append("\\t")
            case 0x00...0x1F:
                append("\\u00")
                bytes.append(Self.hexDigit(byte >> 4))
                bytes.append(Self.hexDigit(byte & 0x0F))
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") &+ nibble : UInt8(ascii: "a") &+ (nibble &- 10)
    }
}
