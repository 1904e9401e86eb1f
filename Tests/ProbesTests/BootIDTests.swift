import Testing

@testable import Probes

struct BootIDTests {
    @Test func parsesTheCapturedFile() throws {
        #expect(try ProcFS(root: Fixtures.linux618Proc).bootID() == "20945068-5d3d-4f19-967f-d2d6f9374361")
    }

    @Test(arguments: [
        ("20945068-5d3d-4f19-967f-d2d6f9374361\n", "20945068-5d3d-4f19-967f-d2d6f9374361"),
        ("20945068-5d3d-4f19-967f-d2d6f9374361", "20945068-5d3d-4f19-967f-d2d6f9374361"),
        ("  20945068-5d3d-4f19-967f-d2d6f9374361 \t\n", "20945068-5d3d-4f19-967f-d2d6f9374361"),
        // Upper case is the same UUID; it is compared between samples, so it is normalised.
        ("20945068-5D3D-4F19-967F-D2D6F9374361\n", "20945068-5d3d-4f19-967f-d2d6f9374361"),
        ("00000000-0000-0000-0000-000000000000\n", "00000000-0000-0000-0000-000000000000"),
    ])
    func parsesAndNormalises(text: String, expected: String) throws {
        #expect(try BootID.parse(text) == expected)
    }

    @Test(arguments: [
        ("empty file", "", 0),
        ("empty first line", "\n20945068-5d3d-4f19-967f-d2d6f9374361\n", 1),
        ("garbage", "not-a-uuid\n", 1),
        ("truncated", "20945068-5d3d-4f19-967f-d2d6f937436", 1),
        ("one character too many", "20945068-5d3d-4f19-967f-d2d6f93743610\n", 1),
        ("no dashes", "209450685d3d4f19967fd2d6f9374361abcd\n", 1),
        ("dash moved", "2094506-85d3d-4f19-967f-d2d6f9374361\n", 1),
        ("non-hex digit", "g0945068-5d3d-4f19-967f-d2d6f9374361\n", 1),
        ("braces", "{0945068-5d3d-4f19-967f-d2d6f937436}\n", 1),
    ])
    func malformedInputNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "/proc/sys/kernel/random/boot_id", line: line) { () throws(ProbeError) in
            try BootID.parse(text)
        }
    }

    @Test func binaryGarbageIsMalformedNotACrash() {
        let bytes = [UInt8](repeating: 0xFF, count: 36)
        expectMalformed(path: "/proc/sys/kernel/random/boot_id", line: 1) { () throws(ProbeError) in
            try BootID.parse(bytes)
        }
    }

    @Test func errorsNameTheFileUnderTheProcRoot() {
        expectMalformed(path: Fixtures.garbageProc + "/sys/kernel/random/boot_id", line: 1) { () throws(ProbeError) in
            try ProcFS(root: Fixtures.garbageProc).bootID()
        }
    }
}
