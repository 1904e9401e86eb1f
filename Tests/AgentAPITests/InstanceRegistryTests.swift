import AgentAPI
import Foundation
import Metering
import Outbox
import Testing
import RuntimeState

/// The registry over a real SQLite file: API registrations survive a restart, an id belongs to one
/// source (a file or the API, never the host's), and the generation moves only when something did.
@Suite struct InstanceRegistryTests {
    /// A database file in a fresh directory, removed at the end.
    struct Scratch {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("registry-\(UUID().uuidString)")
        var path: String { directory.appendingPathComponent("hostmeter.sqlite").path }
        init() throws { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    static func manifest(_ id: String, user: String = "alice", vcpus: Int = 2) throws -> InstanceManifest {
        try InstanceManifest(instanceID: id, userID: user, cgroup: "machine.slice/\(id).scope", vcpus: vcpus)
    }

    static let filesDir = "/etc/hostmeter/instances.d"

    @Test func putAndDeleteAreStoredAndSurviveReopening() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        do {
            let registry = try InstanceRegistry(database: try AgentDatabase.open(path: scratch.path))
            #expect(registry.instances.isEmpty)
            #expect(try registry.put(Self.manifest("vm-2", user: "bob"), now: 1_000) == true)
            #expect(try registry.put(Self.manifest("vm-1"), now: 1_001) == true)
            #expect(try registry.put(Self.manifest("vm-1", vcpus: 8), now: 1_002) == false)
            #expect(registry.instance("vm-1") == RegisteredInstance(manifest: try Self.manifest("vm-1", vcpus: 8), source: .api))
        }
        do {
            let database = try AgentDatabase.open(path: scratch.path)
            let stored = try database.storedInstances()
            #expect(stored.map(\.instanceID) == ["vm-1", "vm-2"])
            #expect(stored.first?.updatedAt == 1_002)
            let registry = try InstanceRegistry(database: database)
            #expect(registry.instances.map(\.manifest.instanceID) == ["vm-1", "vm-2"])
            #expect(registry.instances.allSatisfy { $0.source == .api })
            #expect(registry.instance("vm-1")?.manifest.vcpus == 8)
            #expect(registry.instance("vm-2")?.manifest.userID == "bob")
            #expect(try registry.delete("vm-1") == true)
            #expect(try registry.delete("vm-1") == false)
            #expect(try registry.delete("vm-never") == false)
            #expect(registry.instance("vm-1") == nil)
        }
        let reopened = try InstanceRegistry(database: try AgentDatabase.open(path: scratch.path))
        #expect(reopened.instances.map(\.manifest.instanceID) == ["vm-2"])
    }

    @Test func aRegistryWithoutADatabaseKeepsItsInstancesInMemory() throws {
        let registry = InstanceRegistry()
        #expect(try registry.put(Self.manifest("vm-1"), now: 1) == true)
        #expect(try registry.put(Self.manifest("vm-1"), now: 2) == false)
        #expect(try registry.delete("vm-1") == true)
        #expect(try registry.delete("vm-1") == false)
        #expect(registry.instances.isEmpty)
    }

    @Test func aStoredManifestThatNoLongerValidatesIsAnErrorNamingTheInstanceAndField() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let database = try AgentDatabase.open(path: scratch.path)
        try database.storeInstance(
            StoredInstance(
                instanceID: "vm-9", manifest: Data(#"{"instance_id": "vm-9", "user_id": "u", "cgroup": "c", "vcpus": 0}"#.utf8),
                updatedAt: 1))
        do {
            _ = try InstanceRegistry(database: database)
            Issue.record("a stored manifest with vcpus 0 was loaded")
        } catch {
            #expect("\(error)".contains("vm-9"), "\(error)")
            #expect("\(error)".contains("vcpus"), "\(error)")
        }
    }

    @Test func filesAreInEffectWithTheirPathsAndProblemsAreKept() throws {
        let registry = InstanceRegistry()
        let broken = ManifestProblem(file: Self.filesDir + "/broken.yaml", message: "line 4: vcpus: must be …")
        registry.replaceFiles(
            [(Self.filesDir + "/b.yaml", try Self.manifest("vm-b")), (Self.filesDir + "/a.yaml", try Self.manifest("vm-a"))],
            problems: [broken])
        #expect(registry.instances.map(\.manifest.instanceID) == ["vm-a", "vm-b"])
        #expect(registry.instance("vm-a")?.source == .file(Self.filesDir + "/a.yaml"))
        #expect(registry.problems == [broken])
        #expect(InstanceSource.file("/x.yaml").description == "file /x.yaml")
        #expect(InstanceSource.api.description == "api")

        // The next scan replaces the files wholesale.
        registry.replaceFiles([(Self.filesDir + "/a.yaml", try Self.manifest("vm-a"))], problems: [])
        #expect(registry.instances.map(\.manifest.instanceID) == ["vm-a"])
        #expect(registry.problems.isEmpty)
        #expect(registry.instance("vm-b") == nil)
    }

    @Test func aFileNamingAnIDTheAPIHasIsRefusedUntilTheAPIEntryIsDeleted() throws {
        let registry = InstanceRegistry()
        try registry.put(Self.manifest("vm-1", user: "api-user"), now: 1)
        let file = Self.filesDir + "/vm-1.yaml"
        registry.replaceFiles([(file, try Self.manifest("vm-1", user: "file-user"))], problems: [])
        #expect(registry.instances.count == 1)
        #expect(registry.instance("vm-1")?.source == .api)
        #expect(registry.instance("vm-1")?.manifest.userID == "api-user")
        let problem = try #require(registry.problems.first)
        #expect(registry.problems.count == 1)
        #expect(problem.file == file)
        #expect(problem.message == #"instance_id: "vm-1" is registered over the API; DELETE /instances/vm-1 first"#)

        #expect(try registry.delete("vm-1") == true)
        // The file takes the id at the next scan.
        registry.replaceFiles([(file, try Self.manifest("vm-1", user: "file-user"))], problems: [])
        #expect(registry.problems.isEmpty)
        #expect(registry.instance("vm-1")?.source == .file(file))
        #expect(registry.instance("vm-1")?.manifest.userID == "file-user")
    }

    @Test func aSecondFileWithTheSameIDIsRefusedNamingTheFirst() throws {
        let registry = InstanceRegistry()
        let first = Self.filesDir + "/a.yaml"
        let second = Self.filesDir + "/b.yaml"
        registry.replaceFiles(
            [(first, try Self.manifest("vm-1", vcpus: 2)), (second, try Self.manifest("vm-1", vcpus: 4))], problems: [])
        #expect(registry.instances.map(\.source) == [.file(first)])
        #expect(registry.instance("vm-1")?.manifest.vcpus == 2)
        #expect(registry.problems == [ManifestProblem(file: second, message: #"instance_id: "vm-1" is already defined by \#(first)"#)])
    }

    @Test func theHostIDIsReservedForFilesAndTheAPI() throws {
        let registry = InstanceRegistry(reserved: ["host-7"])
        let file = Self.filesDir + "/host.yaml"
        registry.replaceFiles([(file, try Self.manifest("host-7")), (Self.filesDir + "/vm.yaml", try Self.manifest("vm-1"))], problems: [])
        #expect(registry.instances.map(\.manifest.instanceID) == ["vm-1"])
        #expect(registry.problems == [ManifestProblem(file: file, message: #"instance_id: "host-7" is the host's own instance id"#)])
        let host = try Self.manifest("host-7")
        do {
            try registry.put(host, now: 1)
            Issue.record("the host's id was registered over the API")
        } catch {
            guard case .reserved(let id) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(id == "host-7")
            #expect(error.description.contains("host.instance_id"))
        }
        #expect(registry.instance("host-7") == nil)
    }

    @Test func aStoredInstanceWhoseIDBecameTheHostsIsNotInEffect() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        do {
            let registry = try InstanceRegistry(database: try AgentDatabase.open(path: scratch.path))
            try registry.put(Self.manifest("vm-1"), now: 1)
        }
        // host.instance_id is changed to the id registered earlier. The recorder skips an instance
        // with the host's id, so keeping it in effect would show it as registered and never bill
        // it. Refusing to start or leaving it out (as for a file with that id) are both honest.
        let registry: InstanceRegistry
        do {
            registry = try InstanceRegistry(database: try AgentDatabase.open(path: scratch.path), reserved: ["vm-1"])
        } catch {
            return
        }
        #expect(!registry.instances.contains { $0.manifest.instanceID == "vm-1" })
        // Its stored row can still be removed over the API.
        #expect(try registry.delete("vm-1") == true)
    }

    @Test func anIDAFileDefinesCannotBePutOrDeletedOverTheAPI() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let database = try AgentDatabase.open(path: scratch.path)
        let registry = try InstanceRegistry(database: database)
        let file = Self.filesDir + "/vm-1.yaml"
        registry.replaceFiles([(file, try Self.manifest("vm-1"))], problems: [])
        let replacement = try Self.manifest("vm-1", vcpus: 9)
        do {
            try registry.put(replacement, now: 1)
            Issue.record("put over a file-defined id")
        } catch {
            guard case .definedByFile(let id, let definedIn) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(id == "vm-1")
            #expect(definedIn == file)
            #expect(error.description.contains(file))
        }
        do {
            _ = try registry.delete("vm-1")
            Issue.record("deleted a file-defined id")
        } catch {
            guard case .definedByFile(_, let definedIn) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(definedIn == file)
        }
        #expect(registry.instance("vm-1")?.manifest.vcpus == 2)
        #expect(try database.storedInstances().isEmpty)
    }

    @Test func everyScanAndRegistrationIsInEffectAtOnce() throws {
        let registry = InstanceRegistry()
        let a = Self.filesDir + "/a.yaml"
        let problem = ManifestProblem(file: Self.filesDir + "/x.yaml", message: "line 1: empty")
        func expectInEffect(_ expected: [(id: String, vcpus: Int, source: InstanceSource)], problems: [ManifestProblem], _ what: String) {
            let instances = registry.instances
            #expect(instances.map(\.manifest.instanceID) == expected.map(\.id), "\(what)")
            #expect(instances.map(\.manifest.vcpus) == expected.map(\.vcpus), "\(what)")
            #expect(instances.map(\.source) == expected.map(\.source), "\(what)")
            #expect(registry.problems == problems, "\(what)")
        }

        registry.replaceFiles([(a, try Self.manifest("vm-a"))], problems: [problem])
        expectInEffect([("vm-a", 2, .file(a))], problems: [problem], "first scan")
        // The same scan again: the same instances.
        registry.replaceFiles([(a, try Self.manifest("vm-a"))], problems: [problem])
        expectInEffect([("vm-a", 2, .file(a))], problems: [problem], "same scan")

        // A changed manifest, a moved file, a cleared problem, an added and a removed file.
        registry.replaceFiles([(a, try Self.manifest("vm-a", vcpus: 3))], problems: [problem])
        expectInEffect([("vm-a", 3, .file(a))], problems: [problem], "changed manifest")
        let a2 = Self.filesDir + "/a2.yaml"
        registry.replaceFiles([(a2, try Self.manifest("vm-a", vcpus: 3))], problems: [problem])
        expectInEffect([("vm-a", 3, .file(a2))], problems: [problem], "renamed file")
        registry.replaceFiles([(a2, try Self.manifest("vm-a", vcpus: 3))], problems: [])
        expectInEffect([("vm-a", 3, .file(a2))], problems: [], "problem cleared")
        let b = Self.filesDir + "/b.yaml"
        registry.replaceFiles([(a2, try Self.manifest("vm-a", vcpus: 3)), (b, try Self.manifest("vm-b"))], problems: [])
        expectInEffect([("vm-a", 3, .file(a2)), ("vm-b", 2, .file(b))], problems: [], "file added")
        registry.replaceFiles([(b, try Self.manifest("vm-b"))], problems: [])
        expectInEffect([("vm-b", 2, .file(b))], problems: [], "file removed")

        // The API: a registration and a delete; deleting nothing and a refused put change nothing.
        try registry.put(Self.manifest("vm-api"), now: 1)
        expectInEffect([("vm-api", 2, .api), ("vm-b", 2, .file(b))], problems: [], "put")
        #expect(try registry.delete("vm-none") == false)
        _ = try? registry.put(Self.manifest("vm-b"), now: 2)
        expectInEffect([("vm-api", 2, .api), ("vm-b", 2, .file(b))], problems: [], "refused put")
        #expect(try registry.delete("vm-api") == true)
        expectInEffect([("vm-b", 2, .file(b))], problems: [], "delete")
    }
}
