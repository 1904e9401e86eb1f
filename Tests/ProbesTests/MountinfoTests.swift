import Testing

@testable import Probes

struct MountinfoTests {
    // MARK: The real file

    @Test func parsesTheCapturedFile() throws {
        let mounts = try ProcFS(root: Fixtures.linux618Proc).mountinfo()
        #expect(mounts.count == 20)
        #expect(
            mounts.first
                == MountInfo(
                    mountID: 22, parentID: 27, major: 0, minor: 21, root: "/", mountPoint: "/proc",
                    mountOptions: "rw,relatime", fsType: "proc", source: "proc", superOptions: "rw"))
        let root = try #require(mounts.first { $0.mountPoint == "/" })
        #expect(
            root
                == MountInfo(
                    mountID: 27, parentID: 1, major: 254, minor: 0, root: "/", mountPoint: "/", mountOptions: "rw,relatime",
                    fsType: "ext4", source: "/dev/vda", superOptions: "rw,discard,resv_strict,resuid=65534,resgid=65534"))
        #expect(mounts.last?.fsType == "cgroup2")
        #expect(mounts.filter { $0.fsType == "cgroup" }.count == 9)
    }

    // MARK: Optional fields

    @Test(arguments: [
        "",
        "shared:1",
        "master:1",
        "shared:5 master:1 propagate_from:1 unbindable",
    ])
    func anyNumberOfOptionalFieldsBeforeTheSeparator(optional: String) throws {
        let line = "36 35 98:0 /mnt1 /mnt2 rw,noatime \(optional) - ext3 /dev/root rw,errors=continue\n"
        let mount = try #require(try Mountinfo.parse(line).first)
        #expect(
            mount
                == MountInfo(
                    mountID: 36, parentID: 35, major: 98, minor: 0, root: "/mnt1", mountPoint: "/mnt2",
                    mountOptions: "rw,noatime", fsType: "ext3", source: "/dev/root", superOptions: "rw,errors=continue"))
    }

    @Test func aBindMountKeepsItsRootWithinTheFilesystem() throws {
        let mount = try #require(
            try Mountinfo.parse("100 27 254:0 /var/lib/data /srv/data rw,relatime shared:1 - ext4 /dev/vda rw\n").first)
        #expect(mount.root == "/var/lib/data")
        #expect(mount.mountPoint == "/srv/data")
    }

    @Test func largeDeviceNumbersParse() throws {
        let mount = try #require(try Mountinfo.parse("1 0 259:1048575 / / rw - xfs /dev/nvme0n1p1 rw\n").first)
        #expect(mount.major == 259)
        #expect(mount.minor == 1_048_575)
    }

    // MARK: Escapes

    @Test(arguments: [
        (#"/mnt/my\040disk"#, "/mnt/my disk"),
        (#"/mnt/tab\011here"#, "/mnt/tab\there"),
        (#"/mnt/back\134slash"#, #"/mnt/back\slash"#),
        (#"/mnt/new\012line"#, "/mnt/new\nline"),
        (#"\040lead\040and\040trail\040"#, " lead and trail "),
        (#"/mnt/a\040\040b"#, "/mnt/a  b"),
        // Not an escape: kept as written.
        (#"/mnt/not\08octal"#, #"/mnt/not\08octal"#),
        (#"/mnt/short\04"#, #"/mnt/short\04"#),
        (#"/mnt/over\777"#, #"/mnt/over\777"#),
        (#"/mnt/lone\"#, #"/mnt/lone\"#),
        ("/mnt/plain", "/mnt/plain"),
    ])
    func octalEscapesAreUndone(escaped: String, expected: String) {
        #expect(Mountinfo.unescape(ArraySlice(Array(escaped.utf8))) == expected)
    }

    @Test func rootMountPointAndSourceAreUnescapedButOptionsAreNot() throws {
        let line = #"40 27 8:17 /my\040dir /media/usb\040stick rw,relatime - vfat /dev/disk\134by-label rw,fmask=0022\040x"#
        let mount = try #require(try Mountinfo.parse(line).first)
        #expect(mount.root == "/my dir")
        #expect(mount.mountPoint == "/media/usb stick")
        #expect(mount.source == #"/dev/disk\by-label"#)
        #expect(mount.superOptions == #"rw,fmask=0022\040x"#)
    }

    // An empty source is real kernel output: `mount -t tmpfs "" /mnt/x` makes the kernel print the
    // empty string between two spaces ("- tmpfs  rw"). util-linux, runc and snapd all had to handle it.
    @Test func anEmptySourceKeepsTheSuperOptionsInPlace() throws {
        let line = "74 25 0:59 / /mnt/tmpfs rw,relatime shared:38 - tmpfs  rw,size=1024k\n"
        let mount = try #require(try Mountinfo.parse(line).first)
        #expect(mount.fsType == "tmpfs")
        #expect(mount.source == "")
        #expect(mount.superOptions == "rw,size=1024k")
    }

    @Test func blankLinesAreSkipped() throws {
        #expect(try Mountinfo.parse("\n1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\n").count == 1)
    }

    // MARK: Malformed

    private static let good = "22 27 0:21 / /proc rw,relatime - proc proc rw\n"

    @Test(arguments: [
        ("empty file", "", 0),
        ("only blank lines", "\n  \n", 0),
        ("garbage", "hello world\n", 1),
        ("truncated before the separator", good + "27 1 254:0 / / rw,rela", 2),
        ("truncated after the separator", good + "27 1 254:0 / / rw,relatime - ext4", 2),
        ("no separator", good + "27 1 254:0 / / rw,relatime ext4 /dev/vda rw\n", 2),
        ("separator too early", good + "27 1 254:0 / - ext4 /dev/vda rw\n", 2),
        ("mount id not a number", good + "x 1 254:0 / / rw - ext4 /dev/vda rw\n", 2),
        ("negative parent id", good + "27 -1 254:0 / / rw - ext4 /dev/vda rw\n", 2),
        ("device without a colon", good + "27 1 2540 / / rw - ext4 /dev/vda rw\n", 2),
        ("device major not a number", good + "27 1 a:0 / / rw - ext4 /dev/vda rw\n", 2),
        ("device minor missing", good + "27 1 254: / / rw - ext4 /dev/vda rw\n", 2),
        ("device major past 32 bits", good + "27 1 4294967296:0 / / rw - ext4 /dev/vda rw\n", 2),
    ])
    func malformedInputNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "/proc/self/mountinfo", line: line) { () throws(ProbeError) in
            try Mountinfo.parse(text)
        }
    }

    @Test func binaryGarbageIsMalformedNotACrash() {
        expectMalformed(path: Fixtures.garbageProc + "/self/mountinfo", line: 1) { () throws(ProbeError) in
            try ProcFS(root: Fixtures.garbageProc).mountinfo()
        }
    }
}
