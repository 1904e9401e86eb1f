import Testing

@testable import Probes

struct DiskstatsTests {
    // MARK: The real file

    @Test func parsesTheCapturedFile() throws {
        let disks = try ProcFS(root: Fixtures.linux618Proc).diskstats()
        #expect(disks.map(\.name) == ["loop0", "loop1", "loop2", "loop3", "loop4", "loop5", "loop6", "loop7", "vda", "zram0"])
        let vda = try #require(disks.first { $0.name == "vda" })
        #expect(
            vda
                == DiskStats(
                    major: 254, minor: 0, name: "vda", readsCompleted: 7292, readsMerged: 3689, sectorsRead: 3_103_970,
                    readTimeMilliseconds: 11077, writesCompleted: 4467, writesMerged: 12084, sectorsWritten: 856_424,
                    writeTimeMilliseconds: 2765, ioInProgress: 0, ioTimeMilliseconds: 3684,
                    weightedIOTimeMilliseconds: 14021, discardsCompleted: 897, discardsMerged: 0,
                    sectorsDiscarded: 169_136, discardTimeMilliseconds: 147, flushesCompleted: 611,
                    flushTimeMilliseconds: 30))
        #expect(vda.bytesRead == 3_103_970 * 512)
        #expect(vda.bytesWritten == 856_424 * 512)
        let zram = try #require(disks.last)
        #expect(zram.major == 253)
        #expect(zram.minor == 0)
    }

    // MARK: Formats by field count

    private static let counters14 = "1 2 3 4 5 6 7 8 9 10 11"

    @Test func fourteenFieldsHaveNoDiscardOrFlushColumns() throws {
        // Kernels up to 4.17.
        let disk = try #require(try Diskstats.parse("   8       0 sda \(Self.counters14)\n").first)
        #expect(
            disk
                == DiskStats(
                    major: 8, minor: 0, name: "sda", readsCompleted: 1, readsMerged: 2, sectorsRead: 3,
                    readTimeMilliseconds: 4, writesCompleted: 5, writesMerged: 6, sectorsWritten: 7,
                    writeTimeMilliseconds: 8, ioInProgress: 9, ioTimeMilliseconds: 10, weightedIOTimeMilliseconds: 11))
        #expect(disk.discardsCompleted == nil)
        #expect(disk.flushesCompleted == nil)
    }

    @Test func eighteenFieldsAddDiscards() throws {
        // 4.18 to 5.4.
        let disk = try #require(try Diskstats.parse("8 0 sda \(Self.counters14) 12 13 14 15\n").first)
        #expect(disk.weightedIOTimeMilliseconds == 11)
        #expect(disk.discardsCompleted == 12)
        #expect(disk.discardsMerged == 13)
        #expect(disk.sectorsDiscarded == 14)
        #expect(disk.discardTimeMilliseconds == 15)
        #expect(disk.flushesCompleted == nil)
        #expect(disk.flushTimeMilliseconds == nil)
    }

    @Test func twentyFieldsAddFlushes() throws {
        // 5.5 and later.
        let disk = try #require(try Diskstats.parse("8 0 sda \(Self.counters14) 12 13 14 15 16 17\n").first)
        #expect(disk.discardTimeMilliseconds == 15)
        #expect(disk.flushesCompleted == 16)
        #expect(disk.flushTimeMilliseconds == 17)
    }

    @Test(arguments: [21, 24])
    func moreThanTwentyFieldsAreANewerKernelAndTheKnownTwentyAreRead(fieldCount: Int) throws {
        let extra = (18..<(fieldCount - 2)).map(String.init).joined(separator: " ")
        let disk = try #require(try Diskstats.parse("8 0 sda \(Self.counters14) 12 13 14 15 16 17 \(extra)\n").first)
        #expect(disk.readsCompleted == 1)
        #expect(disk.flushTimeMilliseconds == 17)
    }

    @Test func formatsCanBeMixedLineByLine() throws {
        let disks = try Diskstats.parse("8 0 sda \(Self.counters14)\n8 16 sdb \(Self.counters14) 12 13 14 15 16 17\n")
        #expect(disks.map(\.discardsCompleted) == [nil, 12])
    }

    // MARK: Names and values

    @Test(arguments: ["cciss/c0d0", "cciss/c0d0p1", "nvme0n1p1", "mmcblk0boot0", "dm-0", "md127", "sr0"])
    func namesAreKeptAsTheKernelPrintsThem(name: String) throws {
        let disk = try #require(try Diskstats.parse("104 0 \(name) \(Self.counters14)\n").first)
        #expect(disk.name == name)
    }

    @Test func countersNear2To64ParseAndBytesWrapLikeTheCounter() throws {
        let max = "18446744073709551615"
        let disk = try #require(try Diskstats.parse("8 0 sda 1 2 \(max) 4 5 6 \(max) 8 9 10 11\n").first)
        #expect(disk.sectorsRead == UInt64.max)
        #expect(disk.bytesRead == UInt64.max &* 512)
        #expect(disk.bytesWritten == 18_446_744_073_709_551_104)
    }

    @Test func largeMajorAndMinorNumbersParse() throws {
        let disk = try #require(try Diskstats.parse("259 1048575 nvme0n1 \(Self.counters14)\n").first)
        #expect(disk.major == 259)
        #expect(disk.minor == 1_048_575)
    }

    @Test func blankLinesAreSkippedAndAnEmptyFileIsNoDisks() throws {
        #expect(try Diskstats.parse("\n8 0 sda \(Self.counters14)\n\n").count == 1)
        // No block devices is "nothing here", not an error.
        #expect(try Diskstats.parse("").isEmpty)
    }

    // MARK: Malformed

    private static let good = "   8       0 sda \(counters14)\n"

    @Test(arguments: [
        // Partition lines of kernels before 2.6.25 have 7 fields.
        ("7-field partition line", good + "   8    1 sda1 1 2 3 4\n", 2),
        ("truncated line", good + " 254 0 vda 1 2 3 4 5 6", 2),
        ("13 fields", good + "8 16 sdb 1 2 3 4 5 6 7 8 9 10\n", 2),
        ("15 fields", good + "8 16 sdb \(counters14) 12\n", 2),
        ("17 fields", good + "8 16 sdb \(counters14) 12 13 14\n", 2),
        ("19 fields", good + "8 16 sdb \(counters14) 12 13 14 15 16\n", 2),
        ("non-numeric counter", good + "8 16 sdb 1 2 x 4 5 6 7 8 9 10 11\n", 2),
        ("non-numeric flush counter", good + "8 16 sdb \(counters14) 12 13 14 15 16 x\n", 2),
        ("negative counter", good + "8 16 sdb 1 2 3 4 5 6 7 8 9 10 -11\n", 2),
        ("counter of 2^64", "8 0 sda 1 2 18446744073709551616 4 5 6 7 8 9 10 11\n", 1),
        ("major not a number", "x 0 sda \(counters14)\n", 1),
        ("major past 32 bits", "4294967296 0 sda \(counters14)\n", 1),
        ("minor not a number", "8 -1 sda \(counters14)\n", 1),
        ("garbage", "hello\n", 1),
    ])
    func malformedInputNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "/proc/diskstats", line: line) { () throws(ProbeError) in
            try Diskstats.parse(text)
        }
    }

    @Test func binaryGarbageIsMalformedNotACrash() {
        expectMalformed(path: "/proc/diskstats", line: 1) { () throws(ProbeError) in
            try Diskstats.parse([0x00, 0xFF, 0x20, 0xFE, 0x0A])
        }
    }

    @Test func errorsNameTheFileUnderTheProcRoot() {
        expectMalformed(path: Fixtures.garbageProc + "/diskstats", line: 1) { () throws(ProbeError) in
            try ProcFS(root: Fixtures.garbageProc).diskstats()
        }
    }
}
