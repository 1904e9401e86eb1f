/// Byte-level helpers shared by the parsers.
///
/// Kernel files are ASCII. Parsing their bytes directly, without building a `String` per line,
/// keeps one full host sample in the tens of microseconds.
enum ASCII {
    static let newline = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let colon = UInt8(ascii: ":")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
    static let dot = UInt8(ascii: ".")
    static let minus = UInt8(ascii: "-")

    @inline(__always)
    static func isBlank(_ byte: UInt8) -> Bool { byte == space || byte == tab }
}

/// One line of a kernel file: its 1-based number and its bytes without the newline.
struct KernelLine {
    let number: Int
    let bytes: ArraySlice<UInt8>

    /// The line as text, for error messages; cut to a readable length.
    var excerpt: String {
        let shown = bytes.prefix(80)
        let text = String(decoding: shown, as: UTF8.self)
        return bytes.count > 80 ? text + "…" : text
    }

    /// The blank-separated fields of the line.
    var fields: [ArraySlice<UInt8>] { KernelText.fields(bytes) }
}

enum KernelText {
    /// The lines of `bytes`; a final line without a newline is still a line, an empty final
    /// segment after the last newline is not.
    static func lines(_ bytes: [UInt8]) -> [KernelLine] {
        var result: [KernelLine] = []
        result.reserveCapacity(64)
        var start = bytes.startIndex
        var number = 1
        while start < bytes.endIndex {
            let end = bytes[start...].firstIndex(of: ASCII.newline) ?? bytes.endIndex
            result.append(KernelLine(number: number, bytes: bytes[start..<end]))
            number += 1
            start = end + 1
        }
        return result
    }

    /// Splits on runs of spaces and tabs, dropping empty fields.
    static func fields(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        result.reserveCapacity(24)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            while index < bytes.endIndex, ASCII.isBlank(bytes[index]) { index += 1 }
            guard index < bytes.endIndex else { break }
            let start = index
            while index < bytes.endIndex, !ASCII.isBlank(bytes[index]) { index += 1 }
            result.append(bytes[start..<index])
        }
        return result
    }

    /// Bytes with leading and trailing blanks removed.
    static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var lower = bytes.startIndex
        var upper = bytes.endIndex
        while lower < upper, ASCII.isBlank(bytes[lower]) || bytes[lower] == UInt8(ascii: "\r") { lower += 1 }
        while upper > lower, ASCII.isBlank(bytes[upper - 1]) || bytes[upper - 1] == UInt8(ascii: "\r") { upper -= 1 }
        return bytes[lower..<upper]
    }

    /// A decimal unsigned integer that fits in 64 bits, or nil (empty, a non-digit, overflow).
    static func uint64(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= ASCII.zero, byte <= ASCII.nine else { return nil }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = shifted.addingReportingOverflow(UInt64(byte - ASCII.zero))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    /// A decimal integer that fits in `Int`.
    static func int(_ bytes: ArraySlice<UInt8>) -> Int? {
        guard let value = uint64(bytes), value <= UInt64(Int.max) else { return nil }
        return Int(value)
    }

    /// A non-negative decimal number with an optional fraction ("12.34"), as the kernel prints
    /// /proc/loadavg and /proc/uptime.
    static func decimal(_ bytes: ArraySlice<UInt8>) -> Double? {
        guard let dot = bytes.firstIndex(of: ASCII.dot) else {
            return uint64(bytes).map { Double($0) }
        }
        guard let whole = uint64(bytes[bytes.startIndex..<dot]) else { return nil }
        let fractionBytes = bytes[(dot + 1)...]
        guard !fractionBytes.isEmpty, fractionBytes.count <= 9, let fraction = uint64(fractionBytes) else {
            return nil
        }
        var scale = 1.0
        for _ in 0..<fractionBytes.count { scale *= 10 }
        return Double(whole) + Double(fraction) / scale
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
