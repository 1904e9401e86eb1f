public import Foundation

/// A JSON value and its canonical form by RFC 8785 (the JSON Canonicalization Scheme, JCS): the
/// bytes an event's hash is taken over, so that anyone can recompute it from the event as any JSON
/// library hands it over.
///
/// The rules: no whitespace; object members sorted by the UTF-16 code units of their names;
/// strings in UTF-8 with only `"`, `\` and the control characters escaped (`\b \t \n \f \r` by
/// name, the rest as `\u00xx` in lower-case hex); numbers as ECMAScript writes an IEEE 754 double
/// (`Number.prototype.toString`: the shortest digits that round-trip, plain from 1e-6 up to
/// below 1e21, in exponent form outside). A number that is not finite has no canonical form.
public indirect enum CanonicalJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([CanonicalJSON])
    case object([String: CanonicalJSON])

    /// What has no canonical form.
    public struct Unrepresentable: Error, Equatable, CustomStringConvertible {
        public let reason: String
        public var description: String { "no RFC 8785 form: \(reason)" }
    }

    /// The value of a JSON text (numbers are read as IEEE 754 doubles, as I-JSON has them).
    public init(parsing data: Data) throws {
        self = try JSONDecoder().decode(CanonicalJSON.self, from: data)
    }

    /// The canonical bytes.
    public func canonicalBytes() throws(Unrepresentable) -> [UInt8] {
        var output: [UInt8] = []
        try write(to: &output)
        return output
    }

    private func write(to output: inout [UInt8]) throws(Unrepresentable) {
        switch self {
        case .null: output += Array("null".utf8)
        case .bool(let value): output += Array((value ? "true" : "false").utf8)
        case .number(let value): output += Array(try Self.numberText(value).utf8)
        case .string(let value): Self.writeString(value, to: &output)
        case .array(let values):
            output.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                try value.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            let names = members.keys.sorted { $0.utf16.lexicographicallyPrecedes($1.utf16) }
            for (index, name) in names.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.writeString(name, to: &output)
                output.append(UInt8(ascii: ":"))
                // The name comes from the dictionary's own keys.
                try members[name].unsafelyUnwrapped.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    static func writeString(_ value: String, to output: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        output.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): output += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x08: output += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x09: output += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x0A: output += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0C: output += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x0D: output += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case ..<0x20:
                output += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    /// `value` as ECMAScript's `Number.prototype.toString` writes it.
    static func numberText(_ value: Double) throws(Unrepresentable) -> String {
        guard value.isFinite else { throw Unrepresentable(reason: "the number \(value) is not finite") }
        if value == 0 { return "0" }  // -0 too
        if value < 0 { return "-" + (try numberText(-value)) }
        // Swift's description has the shortest digits that round-trip, as ECMAScript requires;
        // only the layout differs. Read the digits and where the decimal point falls after them.
        let text = value.description
        let parts = text.split(separator: "e", maxSplits: 1)
        let mantissa = parts[0]
        let exponent = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        var digits = Array(mantissa.utf8.filter { $0 != UInt8(ascii: ".") })
        var point = (mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) } ?? mantissa.count)
            + exponent
        while digits.first == UInt8(ascii: "0") {
            digits.removeFirst()
            point -= 1
        }
        while digits.last == UInt8(ascii: "0") { digits.removeLast() }
        // The value is 0.DIGITS × 10^point; k digits.
        let k = digits.count
        let n = point
        let zero = UInt8(ascii: "0")
        var result: [UInt8]
        if k <= n, n <= 21 {
            result = digits + Array(repeating: zero, count: n - k)
        } else if 0 < n, n <= 21 {
            result = Array(digits[..<n]) + [UInt8(ascii: ".")] + Array(digits[n...])
        } else if -6 < n, n <= 0 {
            result = [zero, UInt8(ascii: ".")] + Array(repeating: zero, count: -n) + digits
        } else {
            let power = n - 1
            result = [digits[0]]
            if k > 1 { result += [UInt8(ascii: ".")] + Array(digits[1...]) }
            result += Array("e\(power < 0 ? "-" : "+")\(abs(power))".utf8)
        }
        return String(decoding: result, as: UTF8.self)
    }
}

extension CanonicalJSON: Decodable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([CanonicalJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: CanonicalJSON].self))
        }
    }
}
