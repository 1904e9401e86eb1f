import Foundation
import HostMeterAgent
import Testing

/// A bad edit to a manifest that was valid must not remove the VM: removal bills a final period and
/// a later fix would restart it from a new baseline, losing the usage in between.
@Suite struct InstanceDirectoryEditTests {
    @Test func aRefusedEditKeepsTheLastValidVersionInEffect() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inst-edit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("vm-1.yaml")
        try "instance_id: vm-1\nuser_id: alice\ncgroup: machine.slice/vm-1.scope\nvcpus: 2\n"
            .write(to: file, atomically: false, encoding: .utf8)
        var scanner = InstanceDirectory(path: directory.path)
        let first = scanner.scan()
        #expect(first.manifests.map(\.manifest.vcpus) == [2])
        #expect(first.problems.isEmpty)

        // A typo: vcpus must be a number. Change the size too, so the edit is seen even within
        // the file system's timestamp granularity.
        try "instance_id: vm-1\nuser_id: alice\ncgroup: machine.slice/vm-1.scope\nvcpus: four\n"
            .write(to: file, atomically: false, encoding: .utf8)
        let broken = scanner.scan()
        #expect(broken.manifests.map(\.manifest.vcpus) == [2])
        let problem = try #require(broken.problems.first)
        #expect(problem.file == file.path)
        #expect(problem.message.contains("line 4"))
        #expect(problem.message.contains("vcpus"))
        #expect(problem.message.contains("last valid version stays in effect"))

        // Fixed: the new version is in effect and the problem is gone.
        try "instance_id: vm-1\nuser_id: alice\ncgroup: machine.slice/vm-1.scope\nvcpus: 8\n"
            .write(to: file, atomically: false, encoding: .utf8)
        let fixed = scanner.scan()
        #expect(fixed.manifests.map(\.manifest.vcpus) == [8])
        #expect(fixed.problems.isEmpty)

        // A file that never validated is refused outright.
        try "instance_id: vm-2\n".write(to: directory.appendingPathComponent("vm-2.yaml"), atomically: false, encoding: .utf8)
        let withNew = scanner.scan()
        #expect(withNew.manifests.map(\.manifest.instanceID) == ["vm-1"])
        #expect(withNew.problems.count == 1)
        #expect(withNew.problems.first?.message.contains("user_id") == true)
        #expect(withNew.problems.first?.message.contains("stays in effect") == false)
    }
}
