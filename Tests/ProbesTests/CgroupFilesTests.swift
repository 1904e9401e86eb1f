import Testing

@testable import Probes

struct CgroupFilesTests {
    // MARK: cpu.stat

    @Test(arguments: [
        // 6.18, hybrid host's unified tree (captured): no cpu controller, four lines.
        ("usage_usec 17191\nuser_usec 17191\nsystem_usec 0\nnice_usec 0\n", UInt64(17_191_000)),
        // With the cpu controller and CONFIG_SCHED_CORE.
        (
            "usage_usec 8123456789\nuser_usec 6123456789\nsystem_usec 2000000000\ncore_sched.force_idle_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
            8_123_456_789_000
        ),
        // 4.15–5.x: three lines; no trailing newline; usage_usec not first.
        ("user_usec 1\nsystem_usec 2\nusage_usec 3", 3000),
        ("usage_usec 0\n", 0),
        // The largest value that still fits in nanoseconds.
        ("usage_usec 18446744073709551\n", 18_446_744_073_709_551_000),
    ])
    func cpuStatUsageInNanoseconds(text: String, nanoseconds: UInt64) throws {
        #expect(try CgroupFiles.parseCPUStat(Array(text.utf8), path: "cpu.stat") == nanoseconds)
    }

    @Test(arguments: [
        ("empty file", "", 0),
        ("no usage_usec", "user_usec 1\nsystem_usec 2\n", 0),
        ("truncated in the key", "usage_us", 1),
        ("truncated before the value", "usage_usec\n", 1),
        ("garbage", "hello\n", 1),
        ("negative", "usage_usec -5\n", 1),
        ("not a number", "usage_usec 12ab\n", 1),
        ("past 64 bits", "usage_usec 18446744073709551616\n", 1),
        ("overflows in nanoseconds", "usage_usec 18446744073709552\n", 1),
        ("three fields", "usage_usec 1\nuser_usec 1 2\n", 2),
        ("a decimal", "user_usec 1\nusage_usec 1.5\n", 2),
    ])
    func malformedCPUStatNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "/sys/fs/cgroup/x/cpu.stat", line: line) { () throws(ProbeError) in
            try CgroupFiles.parseCPUStat(Array(text.utf8), path: "/sys/fs/cgroup/x/cpu.stat")
        }
    }

    @Test func binaryGarbageIsMalformedNotACrash() {
        expectMalformed(path: "cpu.stat", line: 1) { () throws(ProbeError) in
            try CgroupFiles.parseCPUStat([0x00, 0x20, 0xFF, 0x20, 0xFE, 0x0A], path: "cpu.stat")
        }
        expectMalformed(path: "io.stat", line: 1) { () throws(ProbeError) in
            try CgroupFiles.parseIOStat([0xFF, 0x3A, 0x00], path: "io.stat")
        }
        expectMalformed(path: "blkio", line: 1) { () throws(ProbeError) in
            try CgroupFiles.parseBlkioServiceBytes([0xFF, 0x20, 0x54], path: "blkio")
        }
    }

    // MARK: io.stat

    @Test(arguments: [
        ("", CgroupIOBytes(readBytes: 0, writeBytes: 0)),
        ("\n", CgroupIOBytes(readBytes: 0, writeBytes: 0)),
        (
            "253:0 rbytes=1343488 wbytes=0 rios=94 wios=0 dbytes=0 dios=0\n252:16 rbytes=734003200 wbytes=1073741824 rios=10240 wios=4096 dbytes=0 dios=0\n",
            CgroupIOBytes(readBytes: 735_346_688, writeBytes: 1_073_741_824)
        ),
        // 4.16–4.20: no discard fields. A trailing blank.
        ("8:0 rbytes=10 wbytes=20 rios=1 wios=2 \n", CgroupIOBytes(readBytes: 10, writeBytes: 20)),
        // io.cost and io.latency add pairs, some not integers.
        (
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0 cost.vrate=135.45 cost.usage=1 cost.wait=0 cost.indebt=0 cost.indelay=0 avg_lat=3.12 win=100\n",
            CgroupIOBytes(readBytes: 10, writeBytes: 20)
        ),
        // Sums wrap rather than trap: deltas of a wrapped sum stay right.
        (
            "8:0 rbytes=18446744073709551615 wbytes=1\n8:16 rbytes=2 wbytes=1\n",
            CgroupIOBytes(readBytes: 1, writeBytes: 2)
        ),
    ])
    func ioStatSumsReadAndWrittenBytes(text: String, expected: CgroupIOBytes) throws {
        #expect(try CgroupFiles.parseIOStat(Array(text.utf8), path: "io.stat") == expected)
    }

    @Test(arguments: [
        ("no device", "rbytes=1 wbytes=2\n", 1),
        ("device without a colon", "8 rbytes=1 wbytes=2\n", 1),
        ("device not numbers", "8:a rbytes=1 wbytes=2\n", 1),
        ("missing wbytes", "8:0 rbytes=1 rios=1\n", 1),
        ("truncated after the device", "8:0 rbytes=1 wbytes=2\n8:16", 2),
        ("truncated in a pair", "8:0 rbytes=1 wbytes=2\n8:16 rbytes=5 wby", 2),
        ("negative", "8:0 rbytes=-1 wbytes=2\n", 1),
        ("empty value", "8:0 rbytes= wbytes=2\n", 1),
        ("past 64 bits", "8:0 rbytes=18446744073709551616 wbytes=2\n", 1),
        ("not key=value", "8:0 rbytes 1 wbytes 2\n", 1),
        ("garbage", "hello world\n", 1),
    ])
    func malformedIOStatNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "/sys/fs/cgroup/x/io.stat", line: line) { () throws(ProbeError) in
            try CgroupFiles.parseIOStat(Array(text.utf8), path: "/sys/fs/cgroup/x/io.stat")
        }
    }

    // MARK: blkio.*io_service_bytes

    @Test(arguments: [
        // 6.18 (captured): 1 MiB of O_DIRECT reads and writes with a throttle rule on 254:0.
        (
            "254:0 Read 1048576\n254:0 Write 1048576\n254:0 Sync 2097152\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 2097152\nTotal 2097152\n",
            CgroupIOBytes(readBytes: 1_048_576, writeBytes: 1_048_576)
        ),
        // 6.18 (captured): no IO, or no throttle rule on any device.
        ("Total 0\n", CgroupIOBytes(readBytes: 0, writeBytes: 0)),
        // Before 4.19: no Discard line; two devices.
        (
            "8:0 Read 4096\n8:0 Write 0\n8:0 Sync 4096\n8:0 Async 0\n8:0 Total 4096\n8:16 Read 1\n8:16 Write 2\n8:16 Sync 3\n8:16 Async 0\n8:16 Total 3\nTotal 4099\n",
            CgroupIOBytes(readBytes: 4097, writeBytes: 2)
        ),
        // An operation a later kernel might add is skipped.
        ("8:0 Read 1\n8:0 Write 2\n8:0 Atomic 7\nTotal 3", CgroupIOBytes(readBytes: 1, writeBytes: 2)),
    ])
    func blkioSumsReadAndWriteOverDevices(text: String, expected: CgroupIOBytes) throws {
        #expect(try CgroupFiles.parseBlkioServiceBytes(Array(text.utf8), path: "blkio") == expected)
    }

    @Test(arguments: [
        ("empty file", "", 0),
        ("truncated before the total", "8:0 Read 1\n8:0 Write 2\n", 0),
        ("truncated in a line", "8:0 Read 1\n8:0 Wri", 2),
        ("value missing", "8:0 Read\nTotal 0\n", 1),
        ("negative", "8:0 Read -1\nTotal 0\n", 1),
        ("past 64 bits", "8:0 Write 18446744073709551616\nTotal 0\n", 1),
        ("total not a number", "Total x\n", 1),
        ("no device", "Read 1 2\nTotal 0\n", 1),
        ("four fields", "8:0 Read 1 2\nTotal 0\n", 1),
        ("garbage", "hello\n", 1),
    ])
    func malformedBlkioNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        let path = "/sys/fs/cgroup/blkio/x/blkio.throttle.io_service_bytes"
        expectMalformed(path: path, line: line) { () throws(ProbeError) in
            try CgroupFiles.parseBlkioServiceBytes(Array(text.utf8), path: path)
        }
    }

    // MARK: Single values

    @Test(arguments: [
        ("4337917952\n", UInt64?.some(4_337_917_952)),
        ("0\n", 0),
        ("max\n", nil),
        ("max", nil),
        ("9223372036854771712\n", 9_223_372_036_854_771_712),
        ("18446744073709551615\n", .max),
        ("  42  \n\n", 42),
    ])
    func singleValues(text: String, expected: UInt64?) throws {
        #expect(try SingleValue.parse(Array(text.utf8), path: "memory.max") == expected)
    }

    @Test(arguments: [
        ("empty file", "", 0),
        ("empty line", "\n", 1),
        ("negative", "-1\n", 1),
        ("past 64 bits", "18446744073709551616\n", 1),
        ("garbage", "lots\n", 1),
        ("two numbers", "1 2\n", 1),
        ("a second line", "1\n2\n", 2),
        ("a decimal", "1.5\n", 1),
        ("Max in capitals", "Max\n", 1),
    ])
    func malformedSingleValuesNameTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "memory.max", line: line) { () throws(ProbeError) in
            try SingleValue.parse(Array(text.utf8), path: "memory.max")
        }
    }

    @Test func aCounterRefusesMax() {
        expectMalformed(path: "cpuacct.usage", line: 1) { () throws(ProbeError) in
            try SingleValue.parseCounter(Array("max\n".utf8), path: "cpuacct.usage")
        }
    }
}
