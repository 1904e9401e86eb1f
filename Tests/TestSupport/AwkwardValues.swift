/// Values chosen to trip a serializer: strings with every character JSON must escape, slashes,
/// multi-byte UTF-8; doubles at the edges of their formatting (integral, negative zero, subnormal,
/// huge, exponent forms); integers at their limits.
public struct AwkwardValues {
    public var random: SplitMix64

    public init(seed: UInt64) { random = SplitMix64(state: seed) }

    private static let pieces: [String] = [
        "a", "Z", "0", "-", "_", ".", ":", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{08}", "\u{0C}",
        "\u{00}", "\u{01}", "\u{1F}", "\u{7F}", "é", "ß", "漢", "🦀", "\u{2028}", "vm-42", "cgroup:/machine.slice/",
    ]

    public mutating func string(maxPieces: Int = 6) -> String {
        var text = ""
        for _ in 0..<Int.random(in: 0...maxPieces, using: &random) {
            text += Self.pieces.randomElement(using: &random)!
        }
        return text
    }

    /// A finite double from one of several shapes.
    public mutating func double() -> Double {
        switch Int.random(in: 0..<8, using: &random) {
        case 0: return [0.0, -0.0, 1, -1, 0.1 + 0.2, 1e-7, 1e16, 1e21, 5e-324, .greatestFiniteMagnitude].randomElement(using: &random)!
        case 1: return Double(Int64.random(in: -1_000_000...1_000_000, using: &random))
        case 2: return Double.random(in: 0..<100, using: &random)
        case 3: return Double.random(in: 0..<1e12, using: &random)
        case 4: return Double(Int64.random(in: .min ... .max, using: &random))
        case 5: return Double.random(in: -1e-3..<1e-3, using: &random)
        default:
            let bits = UInt64.random(in: .min ... .max, using: &random)
            let value = Double(bitPattern: bits)
            return value.isFinite ? value : 42.5
        }
    }

    public mutating func unsigned() -> UInt64 {
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return [0, 1, 9, 10, .max, UInt64(Int64.max)].randomElement(using: &random)!
        case 1: return UInt64.random(in: 0...1_000, using: &random)
        default: return UInt64.random(in: .min ... .max, using: &random)
        }
    }

    public mutating func signed() -> Int64 {
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return [0, -1, 1, .min, .max, -10].randomElement(using: &random)!
        case 1: return Int64.random(in: -1_000...1_000, using: &random)
        default: return Int64.random(in: .min ... .max, using: &random)
        }
    }

    public mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &random) < probability
    }
}
