import Testing

@testable import Probes

struct InterfaceStatisticsTests {
    private let sys = SysFS(root: Fixtures.cgroupV2 + "/sys")

    @Test func readsCountersAndIndexThroughTheClassSymlink() throws {
        #expect(
            try sys.interfaceCounters("vnet0")
                == InterfaceCounters(name: "vnet0", rxBytes: 123_456_789, txBytes: 987_654_321, ifindex: 7))
        #expect(try sys.interfaceCounters("vnet1") == InterfaceCounters(name: "vnet1", rxBytes: 5000, txBytes: 70000, ifindex: 8))
    }

    @Test func aMissingInterfaceIsMissing() {
        #expect(throws: ProbeError.missing(path: Fixtures.cgroupV2 + "/sys/class/net/vnet9")) {
            try sys.interfaceCounters("vnet9")
        }
        do throws(ProbeError) {
            _ = try sys.interfaceCounters("vnet9")
        } catch {
            #expect(error.isMissing)
        }
    }

    @Test func aFileGoneFromAnExistingInterfaceIsMissingToo() throws {
        // The interface was removed between opening its directory and reading a counter.
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.write("class/net/tap0/ifindex", "3\n")
        try tree.write("class/net/tap0/statistics/rx_bytes", "1\n")
        do throws(ProbeError) {
            _ = try SysFS(root: tree.root).interfaceCounters("tap0")
            Issue.record("expected missing")
        } catch {
            #expect(error == .missing(path: tree.root + "/class/net/tap0/statistics/tx_bytes"))
        }
    }

    @Test func aBrokenCounterIsMalformedNamingIt() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.write("class/net/tap0/ifindex", "3\n")
        try tree.write("class/net/tap0/statistics/rx_bytes", "1\n")
        try tree.write("class/net/tap0/statistics/tx_bytes", "-1\n")
        expectMalformed(path: tree.root + "/class/net/tap0/statistics/tx_bytes", line: 1) { () throws(ProbeError) in
            try SysFS(root: tree.root).interfaceCounters("tap0")
        }
    }

    @Test(arguments: [
        ("", "empty"),
        ("a-name-too-long0", "longer than 15 bytes"),
        (".", "'.' and '..' are refused"),
        ("..", "'.' and '..' are refused"),
        ("../../etc", "contains '/'"),
        ("tap/0", "contains '/'"),
        ("eth0:1", "contains ':'"),
        ("tap 0", "contains white space"),
        ("tap\t0", "contains white space"),
        ("tap\n", "contains white space"),
        ("tap\u{0}", "contains NUL"),
    ])
    func invalidNamesAreRefusedBeforeAnyRead(name: String, reason: String) {
        #expect(throws: ProbeError.invalid(path: name, reason: "not a valid interface name: \(reason)")) {
            try sys.interfaceCounters(name)
        }
    }

    @Test(arguments: ["a", "tap0", "vnet12345678901", "br-lan.100", "wg_0", "...", "ifb@x"])
    func validNamesPass(name: String) throws {
        try InterfaceName.validate(name)
    }
}
