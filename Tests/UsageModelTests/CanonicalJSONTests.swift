import Foundation
import TestSupport
import Testing

@testable import UsageModel

/// `CanonicalJSON` against ECMAScript's own output (vectors made with Node.js, Tests/Fixtures/jcs)
/// and RFC 8785's examples.
@Suite struct CanonicalJSONTests {
    static let fixtures = TestPaths.fixtures.appendingPathComponent("jcs")

    @Test func numbersAreWrittenAsECMAScriptWritesThem() throws {
        let lines = try String(contentsOf: Self.fixtures.appendingPathComponent("numbers.txt"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count > 4_000)
        var wrong: [String] = []
        for line in lines {
            let fields = line.split(separator: " ")
            let value = Double(bitPattern: try #require(UInt64(fields[0], radix: 16)))
            let written = try CanonicalJSON.numberText(value)
            if written != fields[1] { wrong.append("\(fields[0]): \(written), ECMAScript \(fields[1])") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) differ: \(wrong.prefix(10))")
    }

    /// RFC 8785 Appendix B's examples, by bit pattern.
    @Test(arguments: [
        (0x0000_0000_0000_0000, "0"), (0x8000_0000_0000_0000, "0"), (0x0000_0000_0000_0001, "5e-324"),
        (0x8000_0000_0000_0001, "-5e-324"), (0x7FEF_FFFF_FFFF_FFFF, "1.7976931348623157e+308"),
        (0x4340_0000_0000_0000, "9007199254740992"), (0x4430_0000_0000_0000, "295147905179352830000"),
        (0x44B5_2D02_C7E1_4AF6, "1e+23"), (0x444B_1AE4_D6E2_EF50, "1e+21"), (0x444B_1AE4_D6E2_EF4F, "999999999999999900000"),
        (0x3EB0_C6F7_A0B5_ED8D, "0.000001"), (0x3EB0_C6F7_A0B5_ED8C, "9.999999999999997e-7"),
        (0x41B3_DE43_5555_5555, "333333333.3333333"), (0x4314_3FF3_C1CB_0959, "1424953923781206.2"),
    ] as [(UInt64, String)])
    func theRFCsNumberExamples(bits: UInt64, written: String) throws {
        #expect(try CanonicalJSON.numberText(Double(bitPattern: bits)) == written)
    }

    @Test func aNumberThatIsNotFiniteHasNoForm() {
        for value in [Double.nan, .infinity, -.infinity] {
            #expect(throws: CanonicalJSON.Unrepresentable.self) { try CanonicalJSON.numberText(value) }
        }
    }

    @Test func documentsAreSortedAndEscapedAsTheSchemeSays() throws {
        let lines = try String(contentsOf: Self.fixtures.appendingPathComponent("documents.txt"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        #expect(lines.count == 6)
        for pair in stride(from: 0, to: lines.count, by: 2) {
            let value = try CanonicalJSON(parsing: Data(lines[pair].utf8))
            let canonical = String(decoding: try value.canonicalBytes(), as: UTF8.self)
            #expect(canonical == String(lines[pair + 1]))
        }
    }

    /// The canonical form does not depend on how the text was written: spaces, member order,
    /// escapes and number spellings of the same values give the same bytes.
    @Test func spellingsOfTheSameValueAgree() throws {
        let spellings = [
            #"{"b":[1,2.5e0,"\u00e9"],"a":{"y":null,"x":true}}"#,
            #" { "a" : { "x" : true , "y" : null } , "b" : [ 1.0 , 25E-1 , "é" ] } "#,
        ]
        let forms = try spellings.map { try CanonicalJSON(parsing: Data($0.utf8)).canonicalBytes() }
        #expect(forms[0] == forms[1])
        #expect(String(decoding: forms[0], as: UTF8.self) == #"{"a":{"x":true,"y":null},"b":[1,2.5,"é"]}"#)
    }
}
