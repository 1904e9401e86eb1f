import Foundation
public import Metering
public import Outbox
import Synchronization

/// Where a registered instance's manifest comes from.
public enum InstanceSource: Sendable, Equatable, Hashable {
    /// A file in `instances_dir`.
    case file(String)
    /// `PUT /instances/{id}`, stored in the database.
    case api

    public var description: String {
        switch self {
        case .file(let path): "file \(path)"
        case .api: "api"
        }
    }
}

/// A manifest in effect and where it came from.
public struct RegisteredInstance: Sendable, Equatable {
    public var manifest: InstanceManifest
    public var source: InstanceSource

    public init(manifest: InstanceManifest, source: InstanceSource) {
        self.manifest = manifest
        self.source = source
    }
}

/// Why the registry refused a change made over the API.
public enum InstanceRegistryError: Error, Sendable, CustomStringConvertible {
    /// The id is defined by a manifest file; the file is the source of truth for it.
    case definedByFile(instanceID: String, file: String)
    /// The id is the host instance's (host mode).
    case reserved(instanceID: String)
    case store(OutboxError)

    public var description: String {
        switch self {
        case .definedByFile(let id, let file):
            "instance \(id) is defined by the manifest file \(file); change or remove the file instead"
        case .reserved(let id): "instance id \(id) is the host's own (host.instance_id); choose another"
        case .store(let error): "\(error)"
        }
    }
}

/// The instances to meter: manifests from `instances_dir` (re-read by the sampler every sample)
/// and those registered over the API (stored in the database, so they survive restarts).
///
/// An id belongs to one source: a `PUT` for an id a file defines is refused, and a file that
/// names an id registered over the API is refused (with a problem naming the file) until the API
/// entry is deleted. Invalid files are refused one by one; the rest keep being metered.
public final class InstanceRegistry: Sendable {
    private struct Entries {
        var api: [String: InstanceManifest] = [:]
        /// By instance id: the manifest and its file.
        var files: [String: (manifest: InstanceManifest, file: String)] = [:]
        var problems: [ManifestProblem] = []
        /// Bumped on every change, so the sampler rebuilds its plan only when something changed.
        var generation: UInt64 = 0
    }

    private let database: AgentDatabase?
    private let entries: Mutex<Entries>
    /// Ids no manifest may take: the host instance's.
    public let reserved: Set<String>

    /// Loads the instances stored over the API. A stored manifest that no longer validates
    /// (written by another version) is an error naming the instance and field.
    public convenience init(database: AgentDatabase?, reserved: Set<String> = []) throws(OutboxError) {
        var entries = Entries()
        for stored in try database?.storedInstances() ?? [] where !reserved.contains(stored.instanceID) {
            do {
                entries.api[stored.instanceID] = try InstanceManifest.decode(json: stored.manifest)
            } catch {
                throw .failed(
                    path: database?.path ?? "", operation: "load instances",
                    reason: "stored manifest of \(stored.instanceID): \(error)")
            }
        }
        self.init(database: database, loaded: entries, reserved: reserved)
    }

    /// A registry held in memory only: for `hostmeter sample` and tests.
    public convenience init(reserved: Set<String> = []) {
        self.init(database: nil, loaded: Entries(), reserved: reserved)
    }

    private init(database: AgentDatabase?, loaded: Entries, reserved: Set<String>) {
        self.database = database
        self.entries = Mutex(loaded)
        self.reserved = reserved
    }

    /// Every instance in effect, ordered by id.
    public var instances: [RegisteredInstance] {
        entries.withLock { entries in
            var result = entries.api.values.map { RegisteredInstance(manifest: $0, source: .api) }
            for (id, entry) in entries.files where entries.api[id] == nil {
                result.append(RegisteredInstance(manifest: entry.manifest, source: .file(entry.file)))
            }
            return result.sorted { $0.manifest.instanceID < $1.manifest.instanceID }
        }
    }

    /// The instance with this id, if registered.
    public func instance(_ id: String) -> RegisteredInstance? {
        entries.withLock { entries in
            if let manifest = entries.api[id] { return RegisteredInstance(manifest: manifest, source: .api) }
            return entries.files[id].map { RegisteredInstance(manifest: $0.manifest, source: .file($0.file)) }
        }
    }

    /// Manifest files refused at the latest scan.
    public var problems: [ManifestProblem] { entries.withLock { $0.problems } }

    /// Changes whenever the set of instances in effect may have changed.
    public var generation: UInt64 { entries.withLock { $0.generation } }

    /// The result of a scan of `instances_dir`: valid manifests by file (in file-name order) and
    /// the files refused. A later file naming an id an earlier one already has, or one an API
    /// registration has, is refused too.
    public func replaceFiles(_ manifests: [(file: String, manifest: InstanceManifest)], problems: [ManifestProblem]) {
        entries.withLock { entries in
            var files: [String: (manifest: InstanceManifest, file: String)] = [:]
            var allProblems = problems
            for (file, manifest) in manifests {
                let id = manifest.instanceID
                if reserved.contains(id) {
                    allProblems.append(
                        ManifestProblem(file: file, message: "instance_id: \"\(id)\" is the host's own instance id"))
                } else if let earlier = files[id] {
                    allProblems.append(
                        ManifestProblem(
                            file: file, message: "instance_id: \"\(id)\" is already defined by \(earlier.file)"))
                } else if entries.api[id] != nil {
                    allProblems.append(
                        ManifestProblem(
                            file: file,
                            message: "instance_id: \"\(id)\" is registered over the API; DELETE /instances/\(id) first"))
                } else {
                    files[id] = (manifest, file)
                }
            }
            allProblems.sort { ($0.file, $0.message) < ($1.file, $1.message) }
            let changed =
                allProblems != entries.problems || files.count != entries.files.count
                || files.contains { id, entry in
                    entries.files[id].map { $0.manifest != entry.manifest || $0.file != entry.file } ?? true
                }
            if changed {
                entries.files = files
                entries.problems = allProblems
                entries.generation &+= 1
            }
        }
    }

    /// Registers or replaces an instance over the API; true if it is new.
    @discardableResult
    public func put(_ manifest: InstanceManifest, now: Double) throws(InstanceRegistryError) -> Bool {
        let id = manifest.instanceID
        guard !reserved.contains(id) else { throw .reserved(instanceID: id) }
        if let file = entries.withLock({ $0.files[id]?.file }) { throw .definedByFile(instanceID: id, file: file) }
        do {
            try database?.storeInstance(StoredInstance(instanceID: id, manifest: manifest.json(), updatedAt: now))
        } catch {
            throw .store(error)
        }
        return entries.withLock { entries in
            let previous = entries.api.updateValue(manifest, forKey: id)
            if previous != manifest { entries.generation &+= 1 }
            return previous == nil
        }
    }

    /// Removes an instance registered over the API; false if there is none. The recorder bills its
    /// final period at the next sample.
    public func delete(_ id: String) throws(InstanceRegistryError) -> Bool {
        if let file = entries.withLock({ $0.api[id] == nil ? $0.files[id]?.file : nil }) {
            throw .definedByFile(instanceID: id, file: file)
        }
        let existed: Bool
        do {
            existed = try database?.deleteInstance(id) ?? (entries.withLock { $0.api[id] } != nil)
        } catch {
            throw .store(error)
        }
        entries.withLock { entries in
            if entries.api.removeValue(forKey: id) != nil { entries.generation &+= 1 }
        }
        return existed
    }
}
