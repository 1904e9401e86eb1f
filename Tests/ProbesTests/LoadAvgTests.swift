import Testing

@testable import Probes

struct LoadAvgTests {
    @Test func parsesTheCapturedFile() throws {
        let load = try ProcFS(root: Fixtures.linux618Proc).loadAvg()
        #expect(load == LoadAvg(load1: 0.28, load5: 0.19, load15: 0.09, running: 1, total: 77, lastPID: 4253))
    }

    @Test(arguments: [
        ("0.00 0.00 0.00 0/0 0\n", LoadAvg(load1: 0, load5: 0, load15: 0, running: 0, total: 0, lastPID: 0)),
        // No trailing newline, and a busy host.
        (
            "123.45 67.80 9.01 512/40000 4194304",
            LoadAvg(load1: 123.45, load5: 67.8, load15: 9.01, running: 512, total: 40000, lastPID: 4_194_304)
        ),
        // Tabs and extra spaces between fields.
        ("1.00\t2.00  3.00 1/2 3\n", LoadAvg(load1: 1, load5: 2, load15: 3, running: 1, total: 2, lastPID: 3)),
        // Whole numbers without a fraction.
        ("1 2 3 4/5 6\n", LoadAvg(load1: 1, load5: 2, load15: 3, running: 4, total: 5, lastPID: 6)),
    ])
    func parsesInlineLines(text: String, expected: LoadAvg) throws {
        #expect(try LoadAvg.parse(text) == expected)
    }

    @Test func onlyTheFirstLineIsRead() throws {
        #expect(try LoadAvg.parse("0.50 0.40 0.30 2/100 999\nanything\n").lastPID == 999)
    }

    @Test(arguments: [
        ("empty file", "", 0),
        ("empty first line", "\n", 1),
        ("garbage", "abc def\n", 1),
        ("truncated", "0.28 0.19 0.0", 1),
        ("four fields", "0.28 0.19 0.09 1/77\n", 1),
        ("six fields", "0.28 0.19 0.09 1/77 4253 9\n", 1),
        ("load not a number", "x 0.19 0.09 1/77 4253\n", 1),
        ("negative load", "-0.28 0.19 0.09 1/77 4253\n", 1),
        ("load with a comma", "0,28 0.19 0.09 1/77 4253\n", 1),
        ("tasks without a slash", "0.28 0.19 0.09 77 4253\n", 1),
        ("tasks missing the total", "0.28 0.19 0.09 1/ 4253\n", 1),
        ("tasks not numbers", "0.28 0.19 0.09 a/b 4253\n", 1),
        ("last PID not a number", "0.28 0.19 0.09 1/77 pid\n", 1),
    ])
    func malformedInputNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "/proc/loadavg", line: line) { () throws(ProbeError) in
            try LoadAvg.parse(text)
        }
    }

    @Test func binaryGarbageIsMalformedNotACrash() {
        expectMalformed(path: "/proc/loadavg", line: 1) { () throws(ProbeError) in
            try LoadAvg.parse([0x00, 0xFF, 0x20, 0xFE])
        }
    }

    @Test func errorsNameTheFileUnderTheProcRoot() {
        expectMalformed(path: Fixtures.garbageProc + "/loadavg", line: 1) { () throws(ProbeError) in
            try ProcFS(root: Fixtures.garbageProc).loadAvg()
        }
    }
}
