import Testing

@testable import Probes

struct KernelTextTests {
    private func slice(_ text: String) -> ArraySlice<UInt8> { ArraySlice(Array(text.utf8)) }

    @Test(arguments: [
        ("0", UInt64(0)),
        ("7", 7),
        ("4294967296", 4_294_967_296),
        ("18446744073709551615", UInt64.max),
        // 20 characters is the most a UInt64 can need; leading zeros within that are fine.
        ("00000000000000000042", 42),
    ])
    func uint64Parses(text: String, expected: UInt64) {
        #expect(KernelText.uint64(slice(text)) == expected)
    }

    @Test(arguments: [
        "",
        "18446744073709551616",  // 2^64
        "99999999999999999999",  // 20 digits, overflows in the multiply
        "184467440737095516150",  // 21 digits
        "-1",
        "+1",
        "1a",
        " 1",
        "1 ",
        "1.0",
        "0x10",
    ])
    func uint64RefusesWhatIsNotAnUnsignedDecimal(text: String) {
        #expect(KernelText.uint64(slice(text)) == nil)
    }

    @Test func intStopsAtIntMax() {
        #expect(KernelText.int(slice("9223372036854775807")) == Int.max)
        #expect(KernelText.int(slice("9223372036854775808")) == nil)
        #expect(KernelText.int(slice("-5")) == nil)
    }

    @Test(arguments: [
        ("0", 0.0),
        ("12", 12.0),
        ("0.28", 0.28),
        ("340.82", 340.82),
        ("1.5", 1.5),
        ("0.000000001", 1e-9),  // nine fraction digits is the most accepted
        ("18446744073709551615.99", 18446744073709551615.99),
    ])
    func decimalParses(text: String, expected: Double) throws {
        let value = try #require(KernelText.decimal(slice(text)))
        #expect(abs(value - expected) <= abs(expected) * 1e-12)
    }

    @Test(arguments: [
        "",
        ".5",
        "5.",
        "1.2.3",
        "1.1234567890",  // ten fraction digits
        "-1.0",
        "1,5",
        "abc",
        "1e3",
        "18446744073709551616.0",
    ])
    func decimalRefusesMalformedNumbers(text: String) {
        #expect(KernelText.decimal(slice(text)) == nil)
    }

    @Test func fieldsSplitOnRunsOfSpacesAndTabs() {
        let fields = KernelText.fields(slice("  cpu0 \t 12\t\t34   56 ")).map(KernelText.string)
        #expect(fields == ["cpu0", "12", "34", "56"])
        #expect(KernelText.fields(slice("")).isEmpty)
        #expect(KernelText.fields(slice(" \t ")).isEmpty)
    }

    @Test func linesAreNumberedFromOneAndKeepAFinalLineWithoutNewline() {
        let lines = KernelText.lines(Array("a\n\nbc".utf8))
        #expect(lines.map(\.number) == [1, 2, 3])
        #expect(lines.map { KernelText.string($0.bytes) } == ["a", "", "bc"])
    }

    @Test func aTrailingNewlineDoesNotMakeAnEmptyLastLine() {
        #expect(KernelText.lines(Array("a\nb\n".utf8)).count == 2)
        #expect(KernelText.lines([]).isEmpty)
        #expect(KernelText.lines(Array("\n".utf8)).count == 1)
    }

    @Test func trimmedDropsBlanksAndCarriageReturns() {
        #expect(KernelText.string(KernelText.trimmed(slice(" \t value x \r"))) == "value x")
        #expect(KernelText.trimmed(slice(" \t\r")).isEmpty)
    }

    @Test func excerptCutsLongLines() {
        let long = String(repeating: "x", count: 100)
        let line = KernelText.lines(Array(long.utf8))[0]
        #expect(line.excerpt == String(repeating: "x", count: 80) + "…")
        #expect(KernelText.lines(Array("short".utf8))[0].excerpt == "short")
    }
}
