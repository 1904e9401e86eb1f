import Testing

@testable import Probes

struct UptimeTests {
    @Test func parsesTheCapturedFile() throws {
        let uptime = try ProcFS(root: Fixtures.linux618Proc).uptime()
        #expect(uptime == Uptime(uptimeSeconds: 340.82, idleSeconds: 588.23))
    }

    @Test(arguments: [
        ("0.00 0.00\n", Uptime(uptimeSeconds: 0, idleSeconds: 0)),
        // Idle is summed over CPUs, so it outgrows uptime on any multi-CPU host.
        ("12345678.90 98765432.10\n", Uptime(uptimeSeconds: 12_345_678.9, idleSeconds: 98_765_432.1)),
        ("5 10", Uptime(uptimeSeconds: 5, idleSeconds: 10)),
        ("1.5\t2.25  \n", Uptime(uptimeSeconds: 1.5, idleSeconds: 2.25)),
    ])
    func parsesInlineLines(text: String, expected: Uptime) throws {
        #expect(try Uptime.parse(text) == expected)
    }

    @Test(arguments: [
        ("empty file", "", 0),
        ("empty first line", "\n340.82 588.23\n", 1),
        ("one field", "340.82\n", 1),
        ("truncated", "340.82 588.", 1),
        ("three fields", "340.82 588.23 1\n", 1),
        ("garbage", "abc 1.0\n", 1),
        ("two dots", "1.0.0 2\n", 1),
        ("negative", "-1.00 2.00\n", 1),
    ])
    func malformedInputNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "/proc/uptime", line: line) { () throws(ProbeError) in
            try Uptime.parse(text)
        }
    }

    @Test func binaryGarbageIsMalformedNotACrash() {
        expectMalformed(path: "/proc/uptime", line: 1) { () throws(ProbeError) in
            try Uptime.parse([0xFF, 0x2E, 0x20, 0x00])
        }
    }

    @Test func anEmptyFileUnderTheProcRootIsNamed() {
        expectMalformed(path: Fixtures.garbageProc + "/uptime", line: 0) { () throws(ProbeError) in
            try ProcFS(root: Fixtures.garbageProc).uptime()
        }
    }
}
