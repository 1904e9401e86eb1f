import Testing

@testable import Probes

struct DiskSelectionTests {
    // MARK: The name heuristic

    @Test(arguments: [
        ("sda1", true),
        ("sda10", true),
        ("sdaa1", true),
        ("vdb2", true),
        ("xvda1", true),
        ("hdc3", true),
        ("nvme0n1p1", true),
        ("nvme10n2p15", true),
        ("mmcblk0p2", true),
        ("loop0p1", true),
        ("cciss/c0d0p1", true),
        ("sda", false),
        ("xvda", false),
        ("vda", false),
        ("nvme0n1", false),
        ("mmcblk0", false),
        ("mmcblk0boot0", false),
        // Not sd|hd|vd|xvd + letters + digits, nor "…<digit>p<digit>".
        ("loop0", false),
        ("dm-0", false),
        ("md0", false),
        ("md127", false),
        ("zram0", false),
        ("sr0", false),
        ("nbd0", false),
        ("cciss/c0d0", false),
        ("sd1", false),  // no letters between the prefix and the number
        ("sdA1", false),
        ("1", false),
        ("", false),
    ])
    func looksLikePartition(name: String, expected: Bool) {
        #expect(DiskSelection.looksLikePartition(name) == expected)
    }

    // MARK: Defaults

    @Test(arguments: ["loop0", "ram0", "zram0", "fd0", "sr0", "nbd0", "dm-0", "md0", "md127"])
    func defaultDevicesLeaveOutDevicesWithoutIOOfTheirOwn(name: String) {
        #expect(!DiskSelection.defaultDevices.selects(name))
    }

    @Test(arguments: ["sda", "vda", "xvda", "nvme0n1", "mmcblk0", "hda", "cciss/c0d0"])
    func defaultDevicesKeepRealDisks(name: String) {
        #expect(DiskSelection.defaultDevices.selects(name))
    }

    @Test func theDefaultIsWholeDisksOnly() {
        #expect(DiskSelection().wholeDisksOnly)
        #expect(DiskSelection().devices == DiskSelection.defaultDevices)
    }

    // MARK: Whole disks from /sys/block, or from the name when there is none

    private static let counters = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"

    /// A proc tree whose diskstats lists `names`, and (when `sysBlock` is given) a sys tree whose
    /// /sys/block lists those whole disks, '/' written as '!' as sysfs does.
    private func tree(diskstats names: [String], sysBlock: [String]?) throws -> TemporaryTree {
        let tree = try TemporaryTree()
        let lines = names.enumerated().map { index, name in "   8 \(index) \(name) \(Self.counters)\n" }
        try tree.write("proc/diskstats", lines.joined())
        if let sysBlock {
            try tree.makeDirectory("sys/block")
            for name in sysBlock {
                try tree.write("sys/block/\(String(name.map { $0 == "/" ? "!" : $0 }))/dev", "8:0\n")
            }
        }
        return tree
    }

    private func selectedDisks(_ tree: TemporaryTree, _ selection: DiskSelection) throws -> [String] {
        let collector = DiskCollector(
            procFS: ProcFS(root: tree.root + "/proc"), sysFS: SysFS(root: tree.root + "/sys"), selection: selection)
        var sample = HostSample(time: SampleTime(wallNanos: 0, bootNanos: 0))
        try collector.collect(into: &sample)
        return try #require(sample.disks).map(\.name)
    }

    private static let devices = [
        "sda", "sda1", "sda2", "nvme0n1", "nvme0n1p1", "cciss/c0d0", "cciss/c0d0p1", "xvda1", "loop0", "dm-0",
    ]

    @Test func wholeDisksComeFromSysBlockWhenItExists() throws {
        // On Xen a partitionless volume can be exported as xvda1: /sys/block lists it as a disk.
        let tree = try tree(diskstats: Self.devices, sysBlock: ["sda", "nvme0n1", "cciss/c0d0", "xvda1", "loop0", "dm-0"])
        #expect(try selectedDisks(tree, DiskSelection()) == ["sda", "nvme0n1", "cciss/c0d0", "xvda1"])
    }

    @Test func withoutSysBlockWholeDisksFallBackToTheNameHeuristic() throws {
        let tree = try tree(diskstats: Self.devices, sysBlock: nil)
        #expect(try selectedDisks(tree, DiskSelection()) == ["sda", "nvme0n1", "cciss/c0d0"])
    }

    @Test func partitionsAreKeptWhenWholeDisksOnlyIsOff() throws {
        let tree = try tree(diskstats: Self.devices, sysBlock: ["sda", "nvme0n1", "cciss/c0d0", "xvda1"])
        #expect(
            try selectedDisks(tree, DiskSelection(wholeDisksOnly: false))
                == ["sda", "sda1", "sda2", "nvme0n1", "nvme0n1p1", "cciss/c0d0", "cciss/c0d0p1", "xvda1"])
    }

    @Test func theNameFilterAppliesBeforeTheWholeDiskCheck() throws {
        let tree = try tree(diskstats: Self.devices, sysBlock: ["sda", "nvme0n1", "cciss/c0d0", "xvda1"])
        let selection = DiskSelection(devices: NameFilter(include: ["nvme*"]))
        #expect(try selectedDisks(tree, selection) == ["nvme0n1"])
    }

    @Test func isWholeDiskIsNilWithoutSysBlockAndMapsSlashToBang() throws {
        let tree = try tree(diskstats: [], sysBlock: ["cciss/c0d0"])
        let sysFS = SysFS(root: tree.root + "/sys")
        #expect(sysFS.isWholeDisk("cciss/c0d0") == true)
        #expect(sysFS.isWholeDisk("cciss/c0d0p1") == false)
        #expect(SysFS(root: tree.root + "/missing").isWholeDisk("sda") == nil)
    }

    @Test func theCapturedSysBlockListsLoopAndZramAsWholeDisks() throws {
        let collector = DiskCollector(
            procFS: ProcFS(root: Fixtures.linux618Proc), sysFS: SysFS(root: Fixtures.linux618Sys),
            selection: DiskSelection(devices: NameFilter()))
        var sample = HostSample(time: SampleTime(wallNanos: 0, bootNanos: 0))
        try collector.collect(into: &sample)
        #expect(sample.disks?.count == 10)
    }

    @Test func aBrokenDiskstatsFailsTheCollector() {
        let collector = DiskCollector(
            procFS: ProcFS(root: Fixtures.garbageProc), sysFS: SysFS(root: Fixtures.linux618Sys), selection: DiskSelection())
        var sample = HostSample(time: SampleTime(wallNanos: 0, bootNanos: 0))
        expectMalformed(path: Fixtures.garbageProc + "/diskstats", line: 1) { () throws(ProbeError) in
            try collector.collect(into: &sample)
        }
        #expect(sample.disks == nil)
    }
}
