import Foundation
import TestSupport
import Testing

/// `hostmeter sample` run as a user runs it: the real binary, its JSON, its exit codes.
@Suite struct SampleCommandTests {
    let realTree = TestPaths.fixtures.appendingPathComponent("linux-6.18.44-fc-v509")

    @Test func samplesThisHostAndExitsZero() throws {
        let result = try hostmeter("sample")
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let sample = try jsonObject(result.stdout)
        #expect(sample["boot_id"] is String)
        let cpu = try #require(sample["cpu"] as? [String: Any])
        #expect((cpu["count"] as? Int ?? 0) >= 1)
        #expect(sample["memory"] != nil)
        #expect((sample["failures"] as? [Any])?.isEmpty == true)
    }

    @Test func fixtureTreeGivesTheCapturedValues() throws {
        let result = try hostmeter(
            "sample", "--proc-root", realTree.appendingPathComponent("proc").path,
            "--sys-root", realTree.appendingPathComponent("sys").path)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let sample = try jsonObject(result.stdout)
        #expect(sample["boot_id"] as? String == "20945068-5d3d-4f19-967f-d2d6f9374361")
        let memory = try #require(sample["memory"] as? [String: Any])
        #expect(memory["total_bytes"] as? Int == 24_684_100 * 1024)
        let disks = try #require(sample["disks"] as? [[String: Any]])
        #expect(disks.map { $0["name"] as? String } == ["vda"])
        let network = try #require(sample["network"] as? [[String: Any]])
        #expect(!network.contains { $0["name"] as? String == "lo" })
    }

    @Test func intervalAddsRates() throws {
        let result = try hostmeter("sample", "--interval", "0.2")
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let rates = try #require(try jsonObject(result.stdout)["rates"] as? [String: Any])
        let elapsed = try #require(rates["elapsed_seconds"] as? Double)
        #expect(elapsed >= 0.19 && elapsed < 5)
        let cpu = try #require(rates["cpu_percent"] as? [String: Any])
        let busy = try #require(cpu["busy"] as? Double)
        #expect((0...100).contains(busy))
    }

    @Test func garbageTreeFailsEveryCollectorWithoutCrashing() throws {
        let garbage = TestPaths.fixtures.appendingPathComponent("garbage")
        let result = try hostmeter(
            "sample", "--proc-root", garbage.appendingPathComponent("proc").path,
            "--sys-root", garbage.appendingPathComponent("sys").path)
        #expect(result.status == 1)
        let sample = try jsonObject(result.stdout)
        let failures = try #require(sample["failures"] as? [[String: Any]])
        let failed = Set(failures.compactMap { $0["collector"] as? String })
        #expect(failed == ["boot", "cpu", "memory", "disk", "filesystem", "network", "load", "uptime"])
        for failure in failures {
            let path = try #require(failure["path"] as? String)
            #expect(path.hasPrefix(garbage.path), "\(path)")
            #expect((failure["message"] as? String)?.contains(path) == true)
        }
        #expect(result.stderr.contains("no collector could read anything"))
        #expect(result.stderr.contains("garbage/proc/meminfo:1:"))
    }

    @Test func partlyBrokenTreeKeepsTheGoodCollectors() throws {
        let partial = TestPaths.fixtures.appendingPathComponent("partial")
        let result = try hostmeter("sample", "--proc-root", partial.appendingPathComponent("proc").path)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let sample = try jsonObject(result.stdout)
        #expect(sample["cpu"] != nil)
        #expect(sample["memory"] != nil)
        #expect(sample["network"] != nil)
        #expect(sample["disks"] == nil)
        let failed = Set((sample["failures"] as? [[String: Any]] ?? []).compactMap { $0["collector"] as? String })
        #expect(failed == ["disk", "load", "uptime"])
        #expect(result.stderr.contains("partial/proc/diskstats:1: expected 14, 18 or 20 fields"))
    }

    @Test(arguments: [["sample", "--interval", "0"], ["sample", "--no-such-flag"], ["no-such-command"]])
    func badUsageExitsTwo(arguments: [String]) throws {
        let result = try run(TestPaths.hostmeter, arguments)
        #expect(result.status == 2, "stderr: \(result.stderr)")
        #expect(!result.stderr.isEmpty)
    }

    @Test func versionPrintsTheVersion() throws {
        let result = try hostmeter("version")
        #expect(result.status == 0)
        #expect(String(decoding: result.stdout, as: UTF8.self).hasPrefix("hostmeter "))
    }
}
