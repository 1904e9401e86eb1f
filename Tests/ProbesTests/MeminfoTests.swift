import Testing

@testable import Probes

struct MeminfoTests {
    // MARK: The real file

    @Test func parsesTheCapturedFileInBytes() throws {
        let meminfo = try ProcFS(root: Fixtures.linux618Proc).meminfo()
        #expect(meminfo.fields.count == 54)
        #expect(meminfo.totalBytes == 24_684_100 * 1024)
        #expect(meminfo.freeBytes == 23_830_832 * 1024)
        #expect(meminfo["MemAvailable"] == 24_377_316 * 1024)
        #expect(meminfo["Active(anon)"] == 1504 * 1024)
        #expect(meminfo["VmallocTotal"] == 34_359_738_367 * 1024)
        #expect(meminfo["Hugepagesize"] == 2048 * 1024)
        #expect(meminfo["HugePages_Total"] == 0)
        #expect(meminfo.swapTotalBytes == 0)
        #expect(meminfo.swapFreeBytes == 0)
    }

    @Test func availableOfTheCapturedFileIsTheKernelsMemAvailable() throws {
        let meminfo = try ProcFS(root: Fixtures.linux618Proc).meminfo()
        #expect(!meminfo.availableIsEstimated)
        #expect(meminfo.availableBytes == 24_377_316 * 1024)
        #expect(meminfo.usedBytes == (24_684_100 - 24_377_316) * 1024)
        #expect(abs(meminfo.usedPercent - 306_784.0 / 24_684_100.0 * 100) < 1e-9)
    }

    // MARK: Kernels before 3.14

    @Test func withoutMemAvailableAvailableIsEstimatedFromFreeBuffersCachedAndSReclaimable() throws {
        let meminfo = try Meminfo.parse(
            """
            MemTotal:        1000000 kB
            MemFree:          100000 kB
            Buffers:           20000 kB
            Cached:           300000 kB
            SwapCached:        99999 kB
            Slab:              70000 kB
            SReclaimable:      50000 kB
            SUnreclaim:        20000 kB

            """)
        #expect(meminfo.availableIsEstimated)
        #expect(meminfo.availableBytes == (100_000 + 20_000 + 300_000 + 50_000) * 1024)
        #expect(meminfo.usedBytes == 530_000 * 1024)
        #expect(abs(meminfo.usedPercent - 53) < 1e-9)
    }

    @Test func theEstimateWithoutSReclaimableUsesWhatIsThere() throws {
        // 2.6.18 has no SReclaimable line.
        let meminfo = try Meminfo.parse("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n")
        #expect(meminfo.availableIsEstimated)
        #expect(meminfo.availableBytes == 310 * 1024)
    }

    @Test func availableNeverExceedsTotal() throws {
        let estimated = try Meminfo.parse("MemTotal: 100 kB\nMemFree: 90 kB\nCached: 90 kB\n")
        #expect(estimated.availableBytes == 100 * 1024)
        #expect(estimated.usedBytes == 0)
        let reported = try Meminfo.parse("MemTotal: 100 kB\nMemAvailable: 150 kB\n")
        #expect(reported.availableBytes == 100 * 1024)
        #expect(reported.usedPercent == 0)
    }

    @Test func usedPercentOfHalfUsedMemoryIs50() throws {
        let meminfo = try Meminfo.parse("MemTotal: 2048 kB\nMemAvailable: 1024 kB\n")
        #expect(meminfo.usedPercent == 50)
    }

    @Test func usedPercentOfZeroTotalIsZeroNotNaN() throws {
        let meminfo = try Meminfo.parse("MemTotal: 0 kB\nMemAvailable: 0 kB\n")
        #expect(meminfo.usedPercent == 0)
    }

    // MARK: Units

    @Test func hugePageCountsAreKeptUnscaled() throws {
        let meminfo = try Meminfo.parse(
            """
            MemTotal:       16384000 kB
            HugePages_Total:     512
            HugePages_Free:      100
            HugePages_Rsvd:        3
            HugePages_Surp:        0
            Hugepagesize:       2048 kB

            """)
        #expect(meminfo["HugePages_Total"] == 512)
        #expect(meminfo["HugePages_Free"] == 100)
        #expect(meminfo["HugePages_Rsvd"] == 3)
        #expect(meminfo["HugePages_Surp"] == 0)
        #expect(meminfo["Hugepagesize"] == 2_097_152)
    }

    @Test func kBValuesUpToTheLargestThatFitsIn64BitsOfBytesParse() throws {
        // 18014398509481983 × 1024 = 2^64 − 1024.
        let meminfo = try Meminfo.parse("MemTotal: 18014398509481983 kB\n")
        #expect(meminfo.totalBytes == 18_446_744_073_709_550_592)
    }

    @Test func countsUpTo2To64Minus1Parse() throws {
        let meminfo = try Meminfo.parse("MemTotal: 1 kB\nHugePages_Total: 18446744073709551615\n")
        #expect(meminfo["HugePages_Total"] == UInt64.max)
    }

    @Test func blankLinesAndMissingFinalNewlineAreFine() throws {
        let meminfo = try Meminfo.parse("\nMemTotal:\t8 kB\n   \nMemFree: 4 kB")
        #expect(meminfo.fields == ["MemTotal": 8192, "MemFree": 4096])
    }

    @Test func absentFieldsAreNil() throws {
        let meminfo = try Meminfo.parse("MemTotal: 8 kB\n")
        #expect(meminfo.freeBytes == nil)
        #expect(meminfo.swapTotalBytes == nil)
        #expect(meminfo["Zswap"] == nil)
    }

    // MARK: Malformed

    @Test(arguments: [
        ("empty file", "", 0),
        ("only blank lines", "\n\n  \n", 0),
        ("truncated before MemTotal", "MemFree: 1 kB\nBuffers: 2 kB\n", 0),
        ("truncated inside a name", "MemTotal: 1 kB\nMemFr", 2),
        ("truncated after a colon", "MemTotal: 1 kB\nMemFree:", 2),
        ("truncated inside a unit", "MemTotal: 1 kB\nMemFree: 5 k", 2),
        ("no colon", "MemTotal 24684100 kB\n", 1),
        ("empty name", "MemTotal: 1 kB\n: 5 kB\n", 2),
        ("non-numeric value", "MemTotal: 1 kB\nMemFree:  lots\n", 2),
        ("negative value", "MemTotal: 1 kB\nMemFree: -1 kB\n", 2),
        ("fraction", "MemTotal: 1 kB\nMemFree: 1.5 kB\n", 2),
        ("unit other than kB", "MemTotal: 1 kB\nMemFree: 5 MB\n", 2),
        ("lower-case unit", "MemTotal: 1 kb\n", 1),
        ("too many fields", "MemTotal: 1 kB\nMemFree: 5 kB extra\n", 2),
        ("kB value past 2^64 bytes", "MemTotal: 18014398509481984 kB\n", 1),
        ("count of 2^64", "MemTotal: 1 kB\nHugePages_Total: 18446744073709551616\n", 2),
        ("garbage", "the quick brown fox\n", 1),
    ])
    func malformedInputNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "/proc/meminfo", line: line) { () throws(ProbeError) in
            try Meminfo.parse(text)
        }
    }

    @Test func binaryGarbageIsMalformedNotACrash() {
        expectMalformed(path: "/proc/meminfo", line: 1) { () throws(ProbeError) in
            try Meminfo.parse([0x00, 0xFF, 0xFE, 0x0A])
        }
    }

    @Test func errorsNameTheFileUnderTheProcRoot() {
        expectMalformed(path: Fixtures.garbageProc + "/meminfo", line: 1) { () throws(ProbeError) in
            try ProcFS(root: Fixtures.garbageProc).meminfo()
        }
    }
}
