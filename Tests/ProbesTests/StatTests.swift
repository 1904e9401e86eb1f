import Testing

@testable import Probes

struct StatTests {
    // MARK: The real file

    @Test func parsesTheCapturedFile() throws {
        let stat = try ProcFS(root: Fixtures.linux618Proc).stat(userHZ: 100)
        #expect(
            stat.total
                == CPUTicks(
                    user: 5929, nice: 0, system: 2645, idle: 58822, iowait: 281, irq: 0, softirq: 29, steal: 230,
                    guest: 0, guestNice: 0))
        #expect(stat.cpuCount == 2)
        #expect(stat.perCPU.map(\.id) == [0, 1])
        #expect(
            stat.perCPU[1].ticks
                == CPUTicks(
                    user: 3644, nice: 0, system: 1345, idle: 28614, iowait: 263, irq: 0, softirq: 19, steal: 117,
                    guest: 0, guestNice: 0))
        #expect(stat.bootTime == 1_795_267_111)
        #expect(stat.userHZ == 100)
        // 5929 + 2645 + 29 + 230; idle 58822 and iowait 281 are not busy.
        #expect(stat.total.busy == 8833)
        #expect(stat.total.total == 8833 + 58822 + 281)
    }

    // MARK: Column counts of older kernels

    @Test(arguments: [
        // Before 2.5.41: user nice system idle.
        ("1 2 3 4", CPUTicks(user: 1, nice: 2, system: 3, idle: 4)),
        // 2.5.41: iowait irq softirq.
        ("1 2 3 4 5 6 7", CPUTicks(user: 1, nice: 2, system: 3, idle: 4, iowait: 5, irq: 6, softirq: 7)),
        // 2.6.11: steal.
        ("1 2 3 4 5 6 7 8", CPUTicks(user: 1, nice: 2, system: 3, idle: 4, iowait: 5, irq: 6, softirq: 7, steal: 8)),
        // 2.6.24: guest.
        (
            "1 2 3 4 5 6 7 8 9",
            CPUTicks(user: 1, nice: 2, system: 3, idle: 4, iowait: 5, irq: 6, softirq: 7, steal: 8, guest: 9)
        ),
        // 2.6.33: guest_nice.
        (
            "1 2 3 4 5 6 7 8 9 10",
            CPUTicks(
                user: 1, nice: 2, system: 3, idle: 4, iowait: 5, irq: 6, softirq: 7, steal: 8, guest: 9, guestNice: 10)
        ),
        // A column a future kernel adds is ignored.
        (
            "1 2 3 4 5 6 7 8 9 10 11",
            CPUTicks(
                user: 1, nice: 2, system: 3, idle: 4, iowait: 5, irq: 6, softirq: 7, steal: 8, guest: 9, guestNice: 10)
        ),
    ])
    func readsEveryColumnTheKernelPrints(columns: String, expected: CPUTicks) throws {
        let stat = try Stat.parse("cpu  \(columns)\ncpu0 \(columns)\nbtime 100\n", userHZ: 100)
        #expect(stat.total == expected)
        #expect(stat.perCPU == [PerCPUStat(id: 0, ticks: expected)])
    }

    @Test func columnsAnOldKernelLacksAreNilInModes() throws {
        let stat = try Stat.parse("cpu 1 2 3 4\ncpu0 1 2 3 4\n", userHZ: 100)
        #expect(stat.total.modes == [1, 2, 3, 4, nil, nil, nil, nil, nil, nil])
        #expect(stat.bootTime == nil)
    }

    // MARK: busy and total

    @Test func busyLeavesOutIdleIowaitAndTheGuestTimeAlreadyInUserAndNice() {
        let ticks = CPUTicks(
            user: 100, nice: 20, system: 30, idle: 1000, iowait: 50, irq: 5, softirq: 6, steal: 7, guest: 40,
            guestNice: 10)
        #expect(ticks.busy == 100 + 20 + 30 + 5 + 6 + 7)
        #expect(ticks.total == 168 + 1000 + 50)
    }

    @Test func busyOfAFourColumnLineIsUserNiceSystem() {
        let ticks = CPUTicks(user: 10, nice: 20, system: 30, idle: 40)
        #expect(ticks.busy == 60)
        #expect(ticks.total == 100)
    }

    @Test func busyWrapsLikeTheCountersInsteadOfTrapping() {
        let ticks = CPUTicks(user: UInt64.max, nice: 0, system: 2, idle: 0)
        #expect(ticks.busy == 1)
    }

    // MARK: USER_HZ

    @Test(arguments: [(100, UInt64(250), 2.5), (250, 250, 1.0), (1000, 1, 0.001), (100, 0, 0.0)])
    func secondsDividesTicksByUserHZ(userHZ: Int, ticks: UInt64, seconds: Double) throws {
        let stat = try Stat.parse("cpu 1 2 3 4\ncpu0 1 2 3 4\n", userHZ: userHZ)
        #expect(stat.userHZ == userHZ)
        #expect(stat.seconds(ticks) == seconds)
    }

    @Test func secondsOfTheCapturedFileAtUserHZ100() throws {
        let stat = try ProcFS(root: Fixtures.linux618Proc).stat(userHZ: 100)
        #expect(stat.seconds(stat.total.user) == 59.29)
    }

    // MARK: Odd but valid

    @Test func cpuIdsKeepTheHolesOfOfflineCPUs() throws {
        let stat = try Stat.parse("cpu 2 0 2 2\ncpu0 1 0 1 1\ncpu3 1 0 1 1\n", userHZ: 100)
        #expect(stat.perCPU.map(\.id) == [0, 3])
        #expect(stat.cpuCount == 2)
    }

    @Test func countersNear2To64Parse() throws {
        let max = "18446744073709551615"
        let stat = try Stat.parse("cpu \(max) 0 0 \(max)\ncpu0 \(max) 0 0 0\n", userHZ: 100)
        #expect(stat.total.user == UInt64.max)
        #expect(stat.total.idle == UInt64.max)
    }

    @Test func linesOtherThanCPUAndBtimeAreNotParsed() throws {
        let text = "cpu 1 2 3 4\ncpu0 1 2 3 4\nintr not numbers at all\nsoftirq x\nprocesses -3\n"
        let stat = try Stat.parse(text, userHZ: 100)
        #expect(stat.cpuCount == 1)
    }

    @Test func tabsAndNoTrailingNewlineAreFine() throws {
        let stat = try Stat.parse("cpu\t1\t2 3 4\ncpu0 1 2 3 4\nbtime 42", userHZ: 100)
        #expect(stat.total == CPUTicks(user: 1, nice: 2, system: 3, idle: 4))
        #expect(stat.bootTime == 42)
    }

    // MARK: Malformed

    @Test(arguments: [
        ("empty file", "", 0),
        ("truncated inside the first line", "cpu  2029 0 14", 1),
        ("truncated inside a per-CPU line", "cpu 1 2 3 4\ncpu0 1 2 3 4\ncpu1 3644 0", 3),
        ("truncated after the aggregate line", "cpu 1 2 3 4\n", 0),
        ("no aggregate line", "cpu0 1 2 3 4\ncpu1 1 2 3 4\n", 0),
        ("garbage", "hello world\nthis is not /proc/stat\n", 0),
        ("label without columns", "cpu\ncpu0 1 2 3 4\n", 1),
        ("non-numeric column", "cpu 1 2 3 4\ncpu0 1 x 3 4\n", 2),
        ("negative column", "cpu -1 2 3 4\ncpu0 1 2 3 4\n", 1),
        ("fraction", "cpu 1.5 2 3 4\ncpu0 1 2 3 4\n", 1),
        ("counter of 2^64", "cpu 18446744073709551616 0 0 0\ncpu0 0 0 0 0\n", 1),
        ("non-numeric guest_nice", "cpu 1 2 3 4 5 6 7 8 9 ten\ncpu0 1 2 3 4\n", 1),
        ("second aggregate line", "cpu 1 2 3 4\ncpu0 1 2 3 4\ncpu 1 2 3 4\n", 3),
        ("bad CPU label", "cpu 1 2 3 4\ncpuX 1 2 3 4\n", 2),
        ("btime not a number", "cpu 1 2 3 4\ncpu0 1 2 3 4\nbtime soon\n", 3),
        ("btime with two values", "cpu 1 2 3 4\ncpu0 1 2 3 4\nbtime 1 2\n", 3),
    ])
    func malformedInputNamesTheFileAndLine(_ name: String, text: String, line: Int) {
        expectMalformed(path: "/proc/stat", line: line) { () throws(ProbeError) in
            try Stat.parse(text, userHZ: 100)
        }
    }

    @Test(arguments: [0, -100])
    func userHZMustBePositive(userHZ: Int) {
        expectMalformed(path: "/proc/stat", line: 0) { () throws(ProbeError) in
            try Stat.parse("cpu 1 2 3 4\ncpu0 1 2 3 4\n", userHZ: userHZ)
        }
    }

    @Test func binaryGarbageIsMalformedNotACrash() {
        let bytes: [UInt8] = [0x63, 0x70, 0x75, 0x00, 0xFF, 0xFE, 0x0A, 0x63, 0x70, 0x75]  // "cpu\0\xff\xfe\ncpu"
        expectMalformed(path: "/proc/stat", line: 1) { () throws(ProbeError) in
            try Stat.parse(bytes, userHZ: 100)
        }
    }

    @Test func errorsNameTheFileUnderTheProcRoot() {
        expectMalformed(path: Fixtures.garbageProc + "/stat", line: 1) { () throws(ProbeError) in
            try ProcFS(root: Fixtures.garbageProc).stat(userHZ: 100)
        }
    }
}
