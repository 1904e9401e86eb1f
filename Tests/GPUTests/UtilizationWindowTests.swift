import GPU
import Testing

@Suite struct UtilizationWindowTests {
    static func samples(_ pairs: [(UInt64, Double)]) -> [UtilizationSample] {
        pairs.map { UtilizationSample(timestampMicros: $0.0, value: $0.1) }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let samples: [(UInt64, Double)]
        let lastSeen: UInt64?
        let busy: UInt64
        let covered: UInt64
        let newest: UInt64?
        let count: Int
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "spans since the previous sample, lastSeen first", samples: [(1_500_000, 40), (2_000_000, 100)],
            lastSeen: 1_000_000, busy: 200_000_000 + 500_000_000, covered: 1_000_000_000, newest: 2_000_000, count: 2),
        Case(
            name: "first look: the oldest sample only starts the window", samples: [(1_000_000, 90), (1_250_000, 20)],
            lastSeen: nil, busy: 50_000_000, covered: 250_000_000, newest: 1_250_000, count: 1),
        Case(
            name: "first look with one sample counts nothing", samples: [(7_000_000, 90)],
            lastSeen: nil, busy: 0, covered: 0, newest: 7_000_000, count: 0),
        Case(
            name: "nothing new", samples: [], lastSeen: 5_000_000, busy: 0, covered: 0, newest: 5_000_000, count: 0),
        Case(name: "nothing at all", samples: [], lastSeen: nil, busy: 0, covered: 0, newest: nil, count: 0),
        Case(
            name: "samples at or before lastSeen are not counted again",
            samples: [(1_000_000, 100), (2_000_000, 100), (3_000_000, 50)], lastSeen: 2_000_000,
            busy: 500_000_000, covered: 1_000_000_000, newest: 3_000_000, count: 1),
        Case(
            name: "a wrapped ring is put in time order",
            samples: [(5_000_000, 10), (6_000_000, 20), (3_000_000, 90), (4_000_000, 70)], lastSeen: 2_000_000,
            busy: 900_000_000 + 700_000_000 + 100_000_000 + 200_000_000, covered: 4_000_000_000, newest: 6_000_000,
            count: 4),
        Case(
            name: "a repeated timestamp counts once", samples: [(2_000_000, 60), (2_000_000, 60)], lastSeen: 1_000_000,
            busy: 600_000_000, covered: 1_000_000_000, newest: 2_000_000, count: 1),
        Case(
            name: "a hole longer than the maximum span is not billed", samples: [(11_000_000, 50)],
            lastSeen: 1_000_000, busy: 750_000_000, covered: 1_500_000_000, newest: 11_000_000, count: 1),
        Case(
            name: "values are clamped to 0…100", samples: [(2_000_000, 250), (3_000_000, -5), (4_000_000, .nan)],
            lastSeen: 1_000_000, busy: 1_000_000_000, covered: 3_000_000_000, newest: 4_000_000, count: 3),
        Case(
            name: "fractional percent rounds to the nanosecond", samples: [(1_000_001, 33.3)],
            lastSeen: 1_000_000, busy: 333, covered: 1_000, newest: 1_000_001, count: 1),
    ]

    @Test(arguments: cases)
    func integrates(_ test: Case) {
        let window = UtilizationWindow.integrate(
            Self.samples(test.samples), after: test.lastSeen, maximumSpanMicros: 1_500_000)
        #expect(window.busyNanoseconds == test.busy)
        #expect(window.coveredNanoseconds == test.covered)
        #expect(window.lastSeenMicros == test.newest)
        #expect(window.sampleCount == test.count)
    }

    @Test func percentIsBusyOverCovered() {
        let window = UtilizationWindow.integrate(
            Self.samples([(2_000_000, 40), (2_500_000, 100), (3_000_000, 0), (3_500_000, 75)]),
            after: 1_500_000, maximumSpanMicros: 1_500_000)
        #expect(window.busyNanoseconds == 1_075_000_000)
        #expect(window.percent == 53.75)
        #expect(UtilizationWindow.integrate([], after: 1, maximumSpanMicros: 1).percent == nil)
    }

    /// Counting a sequence in one look or in several gives the same busy time: no sample is
    /// counted twice or lost at a look boundary, whatever the library returns again.
    @Test func splittingLooksChangesNothing() {
        let all = (1...40).map { UtilizationSample(timestampMicros: UInt64($0) * 250_000, value: Double(($0 * 37) % 101)) }
        let whole = UtilizationWindow.integrate(all, after: 0, maximumSpanMicros: 1_500_000).busyNanoseconds
        for cut in [1, 7, 13, 39] {
            var lastSeen: UInt64 = 0
            var busy: UInt64 = 0
            // Each look sees the whole ring so far, old samples included, in rotated order.
            for end in [cut, 40] {
                let visible = Array(all[0..<end])
                let rotated = Array(visible[(end / 2)...] + visible[..<(end / 2)])
                let window = UtilizationWindow.integrate(rotated, after: lastSeen, maximumSpanMicros: 1_500_000)
                busy += window.busyNanoseconds
                lastSeen = window.lastSeenMicros ?? lastSeen
            }
            #expect(busy == whole, "cut at \(cut)")
        }
    }
}
