import AgentAPI
import Foundation
import HostMeterAgent
import Metering
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `instances_dir` on a real file system: files added, changed, replaced and removed between scans,
/// broken files refused one by one with file, line and field, and unchanged files served from the
/// cache without being read again.
@Suite struct InstanceDirectoryTests {
    /// A fresh directory, removed at the end.
    struct Scratch {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("instances-\(UUID().uuidString)").path
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        func remove() { try? FileManager.default.removeItem(atPath: path) }

        /// Writes `text` in place (same inode when the file exists), as an editor saving over it would.
        @discardableResult
        func write(_ name: String, _ text: String) throws -> String {
            let file = path + "/" + name
            let descriptor = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            defer { close(descriptor) }
            let bytes = Array(text.utf8)
            guard Glibc.write(descriptor, bytes, bytes.count) == bytes.count else {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            return file
        }

        func remove(_ name: String) throws { try FileManager.default.removeItem(atPath: path + "/" + name) }
    }

    static func yaml(_ id: String, user: String = "alice", vcpus: Int = 2) -> String {
        """
        instance_id: \(id)
        user_id: \(user)
        cgroup: machine.slice/\(id).scope
        interfaces: [tap-\(id)]
        vcpus: \(vcpus)

        """
    }

    static func modificationTime(_ file: String) throws -> timespec {
        var info = stat()
        guard stat(file, &info) == 0 else { throw POSIXError(.ENOENT) }
        return info.st_mtim
    }

    /// Sets the file's modification time (and access time) to `time`.
    static func setModificationTime(_ file: String, _ time: timespec) throws {
        let times = [time, time]
        guard utimensat(AT_FDCWD, file, times, 0) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    @Test func filesAddedChangedAndRemovedArePickedUpAtTheNextScan() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var directory = InstanceDirectory(path: scratch.path)
        #expect(directory.scan().manifests.isEmpty)

        let file = try scratch.write("vm-1.yaml", Self.yaml("vm-1", vcpus: 2))
        var scan = directory.scan()
        #expect(scan.problems.isEmpty)
        #expect(scan.manifests.map(\.file) == [file])
        #expect(scan.manifests.first?.manifest.instanceID == "vm-1")
        #expect(scan.manifests.first?.manifest.userID == "alice")
        #expect(scan.manifests.first?.manifest.cgroup == "machine.slice/vm-1.scope")
        #expect(scan.manifests.first?.manifest.interfaces == ["tap-vm-1"])
        #expect(scan.manifests.first?.manifest.vcpus == 2)

        try scratch.write("vm-1.yaml", Self.yaml("vm-1", vcpus: 12))
        scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.vcpus) == [12])

        try scratch.write("vm-2.yml", Self.yaml("vm-2", user: "bob"))
        scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-1", "vm-2"])

        try scratch.remove("vm-1.yaml")
        scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-2"])
        #expect(scan.problems.isEmpty)

        try scratch.remove("vm-2.yml")
        scan = directory.scan()
        #expect(scan.manifests.isEmpty)
        #expect(scan.problems.isEmpty)
    }

    @Test func aSameSizeRewriteIsSeenByItsModificationTime() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var directory = InstanceDirectory(path: scratch.path)
        let file = try scratch.write("vm-1.yaml", Self.yaml("vm-1", vcpus: 2))
        let written = try Self.modificationTime(file)
        #expect(directory.scan().manifests.map(\.manifest.vcpus) == [2])

        // Same inode, same size: only the modification time tells. The kernel's timestamps are
        // coarse, so the later edit is dated a second on explicitly.
        try scratch.write("vm-1.yaml", Self.yaml("vm-1", vcpus: 4))
        try Self.setModificationTime(file, timespec(tv_sec: written.tv_sec + 1, tv_nsec: written.tv_nsec))
        #expect(directory.scan().manifests.map(\.manifest.vcpus) == [4])
    }

    @Test func aFileReplacedByRenameIsSeenByItsInode() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var directory = InstanceDirectory(path: scratch.path)
        let file = try scratch.write("vm-1.yaml", Self.yaml("vm-1", vcpus: 2))
        let written = try Self.modificationTime(file)
        #expect(directory.scan().manifests.map(\.manifest.vcpus) == [2])

        // Written beside it under a hidden name (not a manifest), dated the same, renamed over it.
        let temporary = try scratch.write(".vm-1.yaml.tmp", Self.yaml("vm-1", vcpus: 8))
        try Self.setModificationTime(temporary, written)
        #expect(directory.scan().manifests.map(\.manifest.vcpus) == [2])
        #expect(rename(temporary, file) == 0)
        let scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.vcpus) == [8])
        #expect(scan.manifests.map(\.file) == [file])
    }

    @Test func unchangedFilesAreNotReadAgain() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var directory = InstanceDirectory(path: scratch.path)
        let file = try scratch.write("vm-1.yaml", Self.yaml("vm-1", vcpus: 2))
        let first = directory.scan()
        let written = try Self.modificationTime(file)

        // New content of the same size in the same inode, with the old modification time put back:
        // only a scan that reads the file again would see vcpus 4.
        try scratch.write("vm-1.yaml", Self.yaml("vm-1", vcpus: 4))
        try Self.setModificationTime(file, written)
        let second = directory.scan()
        #expect(second.manifests.map(\.manifest.vcpus) == [2])
        #expect(second.manifests.map(\.file) == first.manifests.map(\.file))

        if getuid() != 0 {
            // Without root, an unreadable file that did not change is still served from the cache
            // (chmod changes the inode's ctime, not its mtime). Root reads it anyway, so this proves
            // nothing there.
            #expect(chmod(file, 0) == 0)
            defer { _ = chmod(file, 0o644) }
            #expect(directory.scan().manifests.map(\.manifest.vcpus) == [2])
        }

        // A later modification time makes it read again.
        try Self.setModificationTime(file, timespec(tv_sec: written.tv_sec + 1, tv_nsec: written.tv_nsec))
        #expect(directory.scan().manifests.map(\.manifest.vcpus) == [4])
        // A fresh directory value has no cache and reads the file.
        var fresh = InstanceDirectory(path: scratch.path)
        #expect(fresh.scan().manifests.map(\.manifest.vcpus) == [4])
    }

    @Test func scansOfAnUnchangedDirectoryAreIdentical() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("b.yaml", Self.yaml("vm-b"))
        try scratch.write("a.yaml", Self.yaml("vm-a"))
        try scratch.write("c.yaml", "instance_id: vm-c\nuser_id: carol\n")
        var directory = InstanceDirectory(path: scratch.path)
        let first = directory.scan()
        for _ in 0..<3 {
            let again = directory.scan()
            #expect(again.manifests.map(\.file) == first.manifests.map(\.file))
            #expect(again.manifests.map(\.manifest) == first.manifests.map(\.manifest))
            #expect(again.problems == first.problems)
        }
        // File-name order, not creation order.
        #expect(first.manifests.map(\.manifest.instanceID) == ["vm-a", "vm-b"])
        #expect(first.problems.map(\.file) == [scratch.path + "/c.yaml"])
    }

    @Test func anInvalidFileIsAProblemNamingFileLineAndFieldWhileTheOthersAreMetered() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("a.yaml", Self.yaml("vm-a"))
        try scratch.write(
            "b.yaml",
            """
            instance_id: vm-b
            user_id: bob
            cgroup: machine.slice/vm-b.scope
            vcpus: 0

            """)
        try scratch.write(
            "c.yml",
            """
            # a VM with two taps
            instance_id: vm-c
            user_id: carol
            interfaces:
              - tap-c0
              - tap/c1

            """)
        try scratch.write("d.json", #"{"instance_id": "vm-d", "user_id": "dave", "cgroup": "vm-d.scope"}"#)
        try scratch.write(
            "e.yaml",
            """
            instance_id: vm-e
            user_id: erin
            cgroup: vm-e.scope
            colour: red

            """)
        var directory = InstanceDirectory(path: scratch.path)
        let scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-a", "vm-d"])
        #expect(scan.problems.map(\.file) == ["b.yaml", "c.yml", "e.yaml"].map { scratch.path + "/" + $0 })
        #expect(scan.problems.first?.message == "line 4: vcpus: must be a whole number from 1 to 4096")
        #expect(scan.problems.dropFirst().first?.message.hasPrefix("line 6: interfaces[1]: must be an interface name") == true)
        #expect(scan.problems.last?.message.hasPrefix("line 4: colour: unknown field") == true)
        #expect(scan.problems.first?.description == scratch.path + "/b.yaml: line 4: vcpus: must be a whole number from 1 to 4096")

        // Fixing the file clears the problem.
        try scratch.write("b.yaml", Self.yaml("vm-b", user: "bob", vcpus: 3))
        let fixed = directory.scan()
        #expect(fixed.manifests.map(\.manifest.instanceID) == ["vm-a", "vm-b", "vm-d"])
        #expect(fixed.problems.count == 2)
    }

    @Test func unreadableAndMalformedFilesAreProblems() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("empty.yaml", "")
        try scratch.write("list.yaml", "- vm-1\n- vm-2\n")
        try scratch.write("broken.yaml", "instance_id: [vm-1\nuser_id: alice\n")
        try scratch.write("huge.yaml", Self.yaml("vm-huge") + "# " + String(repeating: "x", count: 70 * 1024) + "\n")
        try scratch.write("ok.yaml", Self.yaml("vm-ok"))
        var directory = InstanceDirectory(path: scratch.path)
        let scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-ok"])
        let problems = Dictionary(uniqueKeysWithValues: scan.problems.map { (URL(fileURLWithPath: $0.file).lastPathComponent, $0.message) })
        #expect(problems.keys.sorted() == ["broken.yaml", "empty.yaml", "huge.yaml", "list.yaml"])
        #expect(problems["empty.yaml"]?.hasPrefix("empty file") == true)
        #expect(problems["list.yaml"]?.contains("a manifest must be an object") == true, "\(problems)")
        #expect(problems["broken.yaml"]?.hasPrefix("not valid YAML") == true, "\(problems)")
        #expect(problems["huge.yaml"]?.isEmpty == false)
    }

    @Test func onlyVisibleYAMLAndJSONFilesAreManifests() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        // Each of these would be a valid manifest if it were read.
        for (index, name) in [
            ".hidden.yaml", ".vm.yaml.swp", "vm.yaml~", "vm.yaml.dpkg-old", "vm.yaml.dpkg-dist", "vm.yaml.bak",
            "vm.txt", "vm.YAML", "README", "vm.yaml.orig",
        ].enumerated() {
            try scratch.write(name, Self.yaml("vm-\(index)"))
        }
        try FileManager.default.createDirectory(atPath: scratch.path + "/nested.yaml", withIntermediateDirectories: true)
        try scratch.write("real.yaml", Self.yaml("vm-real"))
        var directory = InstanceDirectory(path: scratch.path)
        let scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-real"])
        #expect(scan.problems.isEmpty, "\(scan.problems)")
    }

    @Test func aMissingDirectoryHoldsNoInstancesAndIsNoProblem() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path + "/instances.d"
        var directory = InstanceDirectory(path: path)
        var scan = directory.scan()
        #expect(scan.manifests.isEmpty)
        #expect(scan.problems.isEmpty)

        // Created later: picked up; removed again: nothing, and still no problem.
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try scratch.write("instances.d/vm-1.yaml", Self.yaml("vm-1"))
        scan = directory.scan()
        #expect(scan.manifests.map(\.manifest.instanceID) == ["vm-1"])
        try FileManager.default.removeItem(atPath: path)
        scan = directory.scan()
        #expect(scan.manifests.isEmpty)
        #expect(scan.problems.isEmpty)
    }

    @Test func aTrailingSlashInThePathIsDropped() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("vm-1.yaml", Self.yaml("vm-1"))
        var directory = InstanceDirectory(path: scratch.path + "/")
        #expect(directory.path == scratch.path)
        #expect(directory.scan().manifests.map(\.file) == [scratch.path + "/vm-1.yaml"])
    }

    @Test func aJSONFileIsAccepted() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write(
            "vm-7.json",
            #"""
            {"instance_id": "vm-7", "user_id": "u-1", "org_id": "org-1", "interfaces": ["tap7"],
             "disks": ["/var/lib/vm/7.img"], "gpus": [0, "GPU-1234"], "vcpus": 16}
            """#)
        var directory = InstanceDirectory(path: scratch.path)
        let scan = directory.scan()
        #expect(scan.problems.isEmpty, "\(scan.problems)")
        let manifest = try #require(scan.manifests.first?.manifest)
        #expect(
            manifest
                == (try InstanceManifest(
                    instanceID: "vm-7", userID: "u-1", orgID: "org-1", interfaces: ["tap7"], disks: ["/var/lib/vm/7.img"],
                    gpus: ["0", "GPU-1234"], vcpus: 16)))
    }

    // MARK: parse

    @Test func yamlGivesTheSameManifestAsJSON() throws {
        let yaml = """
            instance_id: vm-42
            user_id: u-9
            org_id: org-1
            cgroup: 'machine.slice/machine-qemu\\x2d1\\x2dvm42.scope'
            interfaces:
              - tap42
            disks: [/var/lib/libvirt/images/vm42.qcow2]
            gpus: [0, 1, GPU-8f3c2d1e]
            vcpus: 4
            """
        let manifest = try InstanceDirectory.parse(yaml, file: "vm-42.yaml").get()
        #expect(manifest.cgroup == #"machine.slice/machine-qemu\x2d1\x2dvm42.scope"#)
        #expect(manifest.gpus == ["0", "1", "GPU-8f3c2d1e"])
        #expect(manifest.disks == ["/var/lib/libvirt/images/vm42.qcow2"])
        #expect(try InstanceManifest.decode(json: manifest.json()) == manifest)
        // A YAML comment, an explicit null and a document marker change nothing.
        let commented = try InstanceDirectory.parse(
            "---\n# vm 1\ninstance_id: vm-1\nuser_id: u\norg_id: ~\ncgroup: vm1.scope\n", file: "x.yaml"
        ).get()
        #expect(commented.orgID == nil)
    }

    @Test(arguments: [
        ("instance_id: vm\nuser_id: u\ncgroup: vm.scope\nvcpus: many\n", "line 4: vcpus: must be a whole number of CPUs"),
        ("instance_id: vm\nuser_id: u\ninterfaces:\n  - tap0\n  - tap0\n", #"line 5: interfaces[1]: "tap0" is listed twice"#),
        ("instance_id: vm\nuser_id: u\ncgroup: vm.scope\ngpus: [0, 'GPU 1']\n", "line 4: gpus[1]: must be a GPU index (0, 1, …) or UUID (GPU-…)"),
        ("user_id: u\ncgroup: vm.scope\n", "line 1: instance_id: is required"),
        ("instance_id: vm\nuser_id: u\n", "line 1: cgroup: an instance needs a cgroup or at least one interface to be metered"),
        ("instance_id: vm\nuser_id: u\ncgroup: a/../b\n", "line 3: cgroup: must be a path below"),
        ("instance_id: vm\nuser_id: u\ncgroup: vm.scope\ndisks:\n  - /a.img\n  - b.img\n", "line 6: disks[1]: must be an absolute path"),
    ])
    func parseNamesTheLineAndField(yaml: String, message: String) {
        switch InstanceDirectory.parse(yaml, file: "/etc/hostmeter/instances.d/vm.yaml") {
        case .success(let manifest):
            Issue.record("accepted \(manifest)")
        case .failure(let problem):
            #expect(problem.file == "/etc/hostmeter/instances.d/vm.yaml")
            #expect(problem.message.hasPrefix(message), "\(problem.message)")
        }
    }
}
