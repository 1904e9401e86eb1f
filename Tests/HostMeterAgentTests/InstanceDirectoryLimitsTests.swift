import AgentAPI
import Foundation
import Logging
import Metering
import Probes
import TestSupport
import Testing

@testable import HostMeterAgent

#if canImport(Glibc)
import Glibc
import RuntimeState
import InputGuards
#endif

/// What no file in `instances_dir` can do: hold up a scan (a parse past its deadline is given up
/// on and the file skipped until it changes), stop the other files being metered (an alias bomb
/// is a problem naming file and line), or grow the agent past `max_instances` (files beyond it are
/// problems naming them). On a real directory with the real parser.
@Suite struct InstanceDirectoryLimitsTests {
    typealias Scratch = InstanceDirectoryTests.Scratch

    static let fixtures = URL(fileURLWithPath: FuzzInput.folder(harness: "agent"))

    /// The fixture of issue 16 (2^26 nodes behind the last key).
    static func bomb() throws -> String {
        try String(
            contentsOf: fixtures.appendingPathComponent("instance_manifest_file/alias-bomb-as-mapping-key"), encoding: .utf8)
    }

    /// The same construction with `levels` levels: small enough that Yams finishes on its own,
    /// long enough (without YAMLGuard) to pass a short deadline.
    static func smallerBomb(levels: Int, id: String = "vm-slow") -> String {
        let names = Array("abcdefghijklmnopqrstuvwxyz")
        var text = "instance_id: \(id)\nuser_id: mallory\na: &a [lol, lol]\n"
        for level in 1..<levels {
            text += "\(names[level]): &\(names[level]) [*\(names[level - 1]), *\(names[level - 1])]\n"
        }
        return text + "? *\(names[levels - 1])\n: boom\n"
    }

    @Test func anAliasBombIsAProblemNamingFileAndLineAndTheOthersAreMetered() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("vm-1.yaml", InstanceDirectoryTests.yaml("vm-1"))
        let bombFile = try scratch.write("vm-bomb.yaml", try Self.bomb())
        try scratch.write("vm-2.yaml", InstanceDirectoryTests.yaml("vm-2"))
        var directory = InstanceDirectory(path: scratch.path)
        let started = ContinuousClock.now
        let scan = directory.scan()
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-1", "vm-2"])
        #expect(scan.unread.isEmpty)
        let problem = try #require(scan.problems.first)
        #expect(scan.problems.count == 1)
        #expect(problem.file == bombFile)
        #expect(
            problem.message.hasPrefix("line 3: an anchor (&a) at column 4: YAML anchors and aliases are not allowed"),
            "\(problem)")
    }

    /// Without YAMLGuard, Yams takes seconds over a smaller bomb: the deadline ends the wait, the
    /// file becomes a problem that stays until the file changes, and the other files are read.
    @Test func aParsePastTheDeadlineIsGivenUpOnAndSkippedUntilTheFileChanges() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("vm-1.yaml", InstanceDirectoryTests.yaml("vm-1"))
        let slowFile = try scratch.write("vm-slow.yaml", Self.smallerBomb(levels: 24))
        try scratch.write("vm-2.yaml", InstanceDirectoryTests.yaml("vm-2"))
        var directory = InstanceDirectory(
            path: scratch.path, maxManifests: 100, parseDeadline: .milliseconds(300), scanWait: .milliseconds(100),
            load: { InstanceDirectory.load($0, guarded: false) })

        // Each scan returns within its wait; until the slow file is given up on, the set of
        // instances is not known and the scan says which file is still being read.
        var scan = directory.scan()
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while !scan.unread.isEmpty, clock.now < deadline {
            let started = clock.now
            scan = directory.scan()
            #expect(clock.now - started < .seconds(2))
        }
        #expect(scan.unread.isEmpty, "still unread: \(scan.unread)")
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-1", "vm-2"])
        #expect(scan.problems.map(\.file) == [slowFile])
        #expect(scan.problems.first?.message == "not read: parsing it took longer than 300 ms; it is skipped until the file changes")

        // Unchanged, it is not parsed again; the other files still are.
        try scratch.write("vm-3.yaml", InstanceDirectoryTests.yaml("vm-3"))
        let started = clock.now
        scan = directory.scan()
        #expect(clock.now - started < .seconds(2))
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-1", "vm-2", "vm-3"])
        #expect(scan.problems.map(\.file) == [slowFile])

        // Changed into a good manifest, it is read again.
        try scratch.write("vm-slow.yaml", InstanceDirectoryTests.yaml("vm-slow"))
        let readAgain = clock.now + .seconds(20)
        repeat {
            scan = directory.scan()
        } while scan.manifests.count < 4 && clock.now < readAgain
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-1", "vm-2", "vm-3", "vm-slow"])
        #expect(scan.problems.isEmpty)
    }

    /// An edit still being read, and then given up on, leaves the version read before in effect:
    /// the VM is neither dropped (billed a final period) nor re-added from a new baseline.
    @Test func aFileEditedIntoASlowOneKeepsItsLastVersionInEffect() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let file = try scratch.write("vm-1.yaml", InstanceDirectoryTests.yaml("vm-1", vcpus: 3))
        var directory = InstanceDirectory(
            path: scratch.path, maxManifests: 100, parseDeadline: .milliseconds(300), scanWait: .milliseconds(50),
            load: { InstanceDirectory.load($0, guarded: false) })
        #expect(directory.scan().manifests.map(\.manifest.vcpus) == [3])

        try scratch.write("vm-1.yaml", Self.smallerBomb(levels: 24, id: "vm-1"))
        var scan = directory.scan()
        #expect(scan.unread.isEmpty)
        #expect(scan.manifests.map(\.manifest.vcpus) == [3])
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while scan.problems.isEmpty, clock.now < deadline {
            scan = directory.scan()
            #expect(scan.manifests.map(\.manifest.vcpus) == [3])
        }
        #expect(scan.problems.map(\.file) == [file])
        #expect(scan.problems.first?.message.hasSuffix("skipped until the file changes; its last valid version stays in effect") == true)
    }

    /// While a new manifest is still being read, the sampler meters no instance rather than
    /// meter them without it: a manifest renamed by a slow write would otherwise look removed
    /// (a final period billed) and come back from a new baseline.
    @Test func instancesAreNotObservedWhileANewManifestIsStillBeingRead() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("vm-1.yaml", InstanceDirectoryTests.yaml("vm-1"))
        var sampling = InstanceSampling(
            registry: InstanceRegistry(),
            directory: InstanceDirectory(
                path: scratch.path, maxManifests: 100, parseDeadline: .milliseconds(400), scanWait: .milliseconds(20),
                load: { InstanceDirectory.load($0, guarded: false) }),
            probe: nil, logger: Logger(label: "test"))
        func observe() -> [String]? {
            sampling.observe(
                time: SampleTime(wallNanos: 1_800_000_000_000_000_000, bootNanos: 1_000_000_000), bootID: nil,
                hostMemoryTotalBytes: nil, gpus: nil)?.observations.map(\.identity.instanceID)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        var observed = observe()
        while observed == nil, clock.now < deadline { observed = observe() }
        #expect(observed == ["vm-1"])

        try scratch.write("vm-2.yaml", Self.smallerBomb(levels: 24, id: "vm-2"))
        #expect(observe() == nil, "observed while vm-2.yaml was still being read")
        observed = nil
        while observed == nil, clock.now < deadline { observed = observe() }
        #expect(observed == ["vm-1"])
        #expect(sampling.registry.problems.map(\.file) == [scratch.path + "/vm-2.yaml"])
    }

    @Test func filesBeyondTheLimitAreProblemsNamingThemAndReadFilesKeepTheirPlace() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in [2, 3, 4] { try scratch.write("vm-\(index).yaml", InstanceDirectoryTests.yaml("vm-\(index)")) }
        var directory = InstanceDirectory(path: scratch.path, maxManifests: 2)
        var scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-2", "vm-3"])
        #expect(scan.problems.map(\.file) == [scratch.path + "/vm-4.yaml"])
        #expect(scan.problems.first?.message.contains("holds 3 manifest files, more than the 2 instances") == true)
        #expect(scan.problems.first?.message.contains("max_instances") == true)

        // A file that sorts first waits its turn: the VMs read already stay.
        try scratch.write("vm-1.yaml", InstanceDirectoryTests.yaml("vm-1"))
        scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-2", "vm-3"])
        #expect(scan.problems.map(\.file) == [scratch.path + "/vm-1.yaml", scratch.path + "/vm-4.yaml"])

        try scratch.remove("vm-3.yaml")
        scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-1", "vm-2"])
    }

    @Test func beyondAHundredFilesTheRestAreCounted() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        for index in 0..<103 {
            try scratch.write(String(format: "vm-%03d.yaml", index), InstanceDirectoryTests.yaml(String(format: "vm-%03d", index)))
        }
        var directory = InstanceDirectory(path: scratch.path, maxManifests: 1)
        let scan = directory.scan()
        #expect(scan.manifests.count == 1)
        #expect(scan.problems.count == 101)
        #expect(scan.problems.last?.file == scratch.path)
        #expect(scan.problems.last?.message.hasPrefix("2 more files are not read: \(scratch.path) holds 103") == true)
    }

    @Test func theDefaultLimitIsTheRegistrysAndTheDirectorys() {
        #expect(AgentConfiguration.defaultMaxInstances == InstanceRegistry.defaultLimit)
        #expect(InstanceDirectory(path: "/nonexistent").maxManifests == InstanceRegistry.defaultLimit)
    }

    @Test(arguments: [("{}", 4096), ("max_instances: 1", 1), ("max_instances: 65536", 65536)])
    func maxInstancesHasADefaultAndARange(yaml: String, expected: Int) throws {
        #expect(try AgentConfiguration.parse(yaml).maxInstances == expected)
    }

    @Test(arguments: ["max_instances: 0", "max_instances: 65537", "max_instances: many"])
    func maxInstancesOutOfRangeIsRefusedNamingTheKey(yaml: String) {
        #expect(throws: ConfigurationError.self) { try AgentConfiguration.parse(yaml) }
        do {
            _ = try AgentConfiguration.parse(yaml)
        } catch {
            #expect(error.key == "max_instances", "\(error)")
        }
    }
}
