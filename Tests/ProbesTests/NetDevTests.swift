import Testing

@testable import Probes

struct NetDevTests {
    private static let header = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed

        """

    private static let zeros = "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"

    // MARK: The real file

    @Test func parsesTheCapturedFile() throws {
        let interfaces = try ProcFS(root: Fixtures.linux618Proc).netDev()
        #expect(interfaces.map(\.name) == ["lo", "ifb0", "ifb1", "eth0"])
        let eth0 = try #require(interfaces.last)
        #expect(eth0.rxBytes == 5903)
        #expect(eth0.rxPackets == 41)
        #expect(eth0.txBytes == 5713)
        #expect(eth0.txPackets == 61)
        #expect(eth0.rxErrors == 0)
        #expect(eth0.txCompressed == 0)
        #expect(interfaces[0].rxBytes == 3193)
        #expect(interfaces[0].txBytes == 3193)
    }

    // MARK: Lines

    @Test func everyCounterLandsInItsField() throws {
        let interfaces = try NetDev.parse(Self.header + "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n")
        #expect(
            interfaces == [
                NetDevStats(
                    name: "eth0", rxBytes: 1, rxPackets: 2, rxErrors: 3, rxDropped: 4, rxFifo: 5, rxFrame: 6,
                    rxCompressed: 7, rxMulticast: 8, txBytes: 9, txPackets: 10, txErrors: 11, txDropped: 12, txFifo: 13,
                    txCollisions: 14, txCarrier: 15, txCompressed: 16)
            ])
    }

    @Test(arguments: ["eth0.100", "br-lan", "veth1a2b-c.3", "wlp2s0", "enp0s31f6", "docker0", "tun_vpn", "a"])
    func interfaceNamesWithDotsDashesAndUnderscores(name: String) throws {
        let interfaces = try NetDev.parse(Self.header + "  \(name): 7 \(Self.zeros.dropFirst(2))\n")
        #expect(interfaces.map(\.name) == [name])
        #expect(interfaces.first?.rxBytes == 7)
    }

    @Test func oldFormatWithoutASpaceAfterTheColon() throws {
        // Kernels before 2.6 printed the first counter right after the colon.
        let interfaces = try NetDev.parse(
            Self.header + "  eth0:123 4 0 0 0 0 0 0 456 7 0 0 0 0 0 0\n    lo:99999999 1 0 0 0 0 0 0 99999999 1 0 0 0 0 0 0\n")
        #expect(interfaces.map(\.name) == ["eth0", "lo"])
        #expect(interfaces[0].rxBytes == 123)
        #expect(interfaces[0].txBytes == 456)
        #expect(interfaces[1].rxBytes == 99_999_999)
    }

    @Test func countersNear2To64Parse() throws {
        let max = "18446744073709551615"
        let interfaces = try NetDev.parse(
            Self.header + "eth0: \(max) 0 0 0 0 0 0 0 \(max) 0 0 0 0 0 0 0\n")
        #expect(interfaces.first?.rxBytes == UInt64.max)
        #expect(interfaces.first?.txBytes == UInt64.max)
    }

    @Test func headersOnlyIsNoInterfaces() throws {
        #expect(try NetDev.parse(Self.header).isEmpty)
    }

    @Test func blankLinesAndTabsAreFine() throws {
        let interfaces = try NetDev.parse(Self.header + "\n\teth0:\t\(Self.zeros)\n   \n")
        #expect(interfaces.map(\.name) == ["eth0"])
    }

    // MARK: Malformed

    @Test(arguments: [
        ("empty file", "", 0),
        ("truncated after the first header", "Inter-|   Receive                |  Transmit\n", 1),
        ("garbage", "hello\nworld\n", 1),
        ("counters without headers", "  eth0: 1 2 3\n", 1),
        ("truncated counters", header + "  eth0: 1 2 3", 3),
        ("15 counters", header + "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n", 3),
        ("17 counters", header + "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n", 3),
        ("non-numeric counter", header + "  eth0: \(zeros)\n  eth1: 0 0 x 0 0 0 0 0 0 0 0 0 0 0 0 0\n", 4),
        ("negative counter", header + "  eth0: -1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", 3),
        ("counter of 2^64", header + "  eth0: 18446744073709551616 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", 3),
        ("no colon", header + "  eth0 \(zeros)\n", 3),
        ("empty name", header + "  : \(zeros)\n", 3),
    ])
    func malformedInputNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "/proc/net/dev", line: line) { () throws(ProbeError) in
            try NetDev.parse(text)
        }
    }

    @Test func binaryGarbageIsMalformedNotACrash() {
        expectMalformed(path: "/proc/net/dev", line: 3) { () throws(ProbeError) in
            try NetDev.parse(Array(Self.header.utf8) + [0x00, 0xFF, 0x3A, 0xFE, 0x0A])
        }
    }

    @Test func errorsNameTheFileUnderTheProcRoot() {
        expectMalformed(path: Fixtures.garbageProc + "/net/dev", line: 1) { () throws(ProbeError) in
            try ProcFS(root: Fixtures.garbageProc).netDev()
        }
    }
}
