import Foundation
import TestSupport
import Testing

@testable import Probes

/// Inputs that the fuzz targets of fuzz/probes broke a parser with, kept under
/// Tests/Fixtures/fuzz/probes/<target>/ (the folder is the target's name). Every one is fed to its target's parser again, which must
/// answer with a value or a `ProbeError` and never trap; the tests below it pin what the fix made
/// of each.
struct FuzzRegressionTests {
    typealias Input = FuzzInput

    static let inputs = FuzzInput.all(harness: "probes")

    /// A kept input of one of this harness's targets, by target and file name.
    static func input(_ target: String, _ name: String) -> Input { Input(harness: "probes", target: target, name: name) }

    /// Each fuzz target's parser, called as fuzz/probes/ProbeFuzzTargets.swift calls it.
    static let parsers: [String: @Sendable ([UInt8]) throws(ProbeError) -> Void] = [
        "stat": { bytes throws(ProbeError) in _ = try Stat.parse(bytes, userHZ: 100, path: "fuzz") },
        "meminfo": { bytes throws(ProbeError) in _ = try Meminfo.parse(bytes, path: "fuzz") },
        "diskstats": { bytes throws(ProbeError) in _ = try Diskstats.parse(bytes, path: "fuzz") },
        "net_dev": { bytes throws(ProbeError) in _ = try NetDev.parse(bytes, path: "fuzz") },
        "loadavg": { bytes throws(ProbeError) in _ = try LoadAvg.parse(bytes, path: "fuzz") },
        "uptime": { bytes throws(ProbeError) in _ = try Uptime.parse(bytes, path: "fuzz") },
        "boot_id": { bytes throws(ProbeError) in _ = try BootID.parse(bytes, path: "fuzz") },
        "mountinfo": { bytes throws(ProbeError) in _ = CgroupLayout.detect(try Mountinfo.parse(bytes, path: "fuzz")) },
        "cgroup_cpu_stat": { bytes throws(ProbeError) in _ = try CgroupFiles.parseCPUStat(bytes, path: "fuzz") },
        "cgroup_io_stat": { bytes throws(ProbeError) in _ = try CgroupFiles.parseIOStat(bytes, path: "fuzz") },
        "cgroup_blkio_service_bytes": { bytes throws(ProbeError) in
            _ = try CgroupFiles.parseBlkioServiceBytes(bytes, path: "fuzz")
        },
        "single_value": { bytes throws(ProbeError) in _ = try SingleValue.parse(bytes, path: "fuzz") },
        "interface_name": { bytes throws(ProbeError) in try InterfaceName.validate(String(decoding: bytes, as: UTF8.self)) },
        "cgroup_path": { bytes throws(ProbeError) in _ = try CgroupReader.normalize(String(decoding: bytes, as: UTF8.self)) },
        "disk_partition_name": { bytes throws(ProbeError) in
            _ = DiskSelection.looksLikePartition(String(decoding: bytes, as: UTF8.self))
        },
    ]

    @Test(arguments: FuzzRegressionTests.inputs)
    func everyKeptInputParsesOrIsRefusedWithAProbeError(input: Input) throws {
        let parse = try #require(Self.parsers[input.target], "Tests/Fixtures/fuzz/probes/\(input.target) is named after no fuzz target")
        let bytes = try input.bytes()
        do throws(ProbeError) {
            try parse(bytes)
        } catch {
            #expect(!error.description.isEmpty)
        }
    }

    // MARK: cgroup_path: normalize split the path at Characters, not at the byte '/'

    /// The path's components split at the byte '/', as the kernel walks it.
    private static func byteComponents(_ path: String) -> [String] {
        path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test(arguments: FuzzRegressionTests.inputs.filter { $0.target == "cgroup_path" })
    func aNormalizedCgroupPathHasNoEmptyDotOrDotDotComponentByteForByte(input: Input) throws {
        let path = String(decoding: try input.bytes(), as: UTF8.self)
        let relative: String
        do throws(ProbeError) {
            relative = try CgroupReader.normalize(path)
        } catch {
            guard case .invalid = error else { Issue.record("not .invalid: \(error)"); return }
            return
        }
        if relative.isEmpty { return }
        for component in Self.byteComponents(relative) {
            #expect(!component.isEmpty && component != "." && component != "..", "normalize(\(String(reflecting: path))) gave \(String(reflecting: relative))")
        }
    }

    /// Found by the fuzzer: "/" followed by U+06EA, a combining mark, is one Character, so the
    /// leading '/' was kept; joined under a mount point it made a doubled slash.
    @Test func aLeadingSlashBeforeACombiningMarkIsDropped() throws {
        let path = String(decoding: try Self.input("cgroup_path", "leading-slash-combining-mark").bytes(), as: UTF8.self)
        #expect(path == "/\u{6EA}")
        #expect(try CgroupReader.normalize(path) == "\u{6EA}")
    }

    /// Found by the fuzzer: "///+///\u{300}/" gave "+//\u{300}".
    @Test func doubledSlashesBeforeACombiningMarkAreFolded() throws {
        let path = String(decoding: try Self.input("cgroup_path", "doubled-slash-combining-mark").bytes(), as: UTF8.self)
        #expect(try CgroupReader.normalize(path) == "+/\u{300}")
    }

    /// Written by hand from the two above: the same split let a `..` through, one level above
    /// the hierarchy's mount point, into a name that starts with the combining mark.
    @Test func aDotDotBeforeACombiningMarkIsRefused() throws {
        let path = String(decoding: try Self.input("cgroup_path", "dotdot-combining-mark").bytes(), as: UTF8.self)
        #expect(path == "../\u{301}x")
        #expect(throws: ProbeError.invalid(path: path, reason: "a cgroup path may not contain '..'")) {
            try CgroupReader.normalize(path)
        }
        let reader = CgroupReader(layout: try Fixtures.layout(Fixtures.cgroupV2), root: Fixtures.cgroupV2)
        #expect(throws: ProbeError.invalid(path: path, reason: "a cgroup path may not contain '..'")) {
            try reader.read(path)
        }
    }
}
