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
    /// The id is new and `limit` instances are registered already (`max_instances`).
    case full(instanceID: String, limit: Int)
    /// The id is canonically equivalent to a registered one but not the same bytes (`e\u{301}`
    /// and `\u{e9}`): ids are compared as bytes, and two such ids would be one in every map keyed
    /// by Swift's `String`, so the second is refused.
    case equivalentID(instanceID: String, registered: String)
    case store(OutboxError)

    public var description: String {
        switch self {
        case .definedByFile(let id, let file):
            "instance \(id) is defined by the manifest file \(file); change or remove the file instead"
        case .reserved(let id): "instance id \(id) is the host's own (host.instance_id); choose another"
        case .full(let id, let limit):
            "instance \(id) is not registered: \(limit) instances are registered, the most this agent meters "
                + "(max_instances); delete one or raise max_instances"
        case .equivalentID(let id, let registered):
            "instance id \(id.debugDescription) is canonically equivalent to the registered id \(registered.debugDescription) "
                + "but not the same bytes; ids are compared as bytes: use the registered spelling or another id"
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
///
/// At most `limit` instances (`max_instances`) are in effect: a `PUT` of a new id beyond it is
/// refused, and so are the files beyond it, ids already in effect first, then in file-name order,
/// so a file added to a full directory never displaces a VM that is being billed. Instances
/// stored over the API beyond a limit lowered since are all kept in effect (dropping them would
/// stop billing running VMs); new ones are refused until there is room.
public final class InstanceRegistry: Sendable {
    /// `max_instances`' default: 4096 VMs fit a large host; each costs about 9 kB of memory and
    /// 33 µs of CPU per probe.
    public static let defaultLimit = 4096

    private struct Entries {
        var api: [String: InstanceManifest] = [:]
        /// By instance id: the manifest and its file.
        var files: [String: (manifest: InstanceManifest, file: String)] = [:]
        /// Ids of `PUT`s storing a new instance right now: they count against the limit.
        var reserving: Set<String> = []
        var problems: [ManifestProblem] = []
        /// `instances`, built once per change rather than per caller.
        var sorted: [RegisteredInstance]?

        /// Instances in effect or being registered.
        var count: Int { api.count + files.count + reserving.count }

        mutating func changed() {
            sorted = nil
        }
    }

    private let database: AgentDatabase?
    private let entries: Mutex<Entries>
    /// Ids no manifest may take: the host instance's.
    public let reserved: Set<String>
    /// The most instances in effect (`max_instances`).
    public let limit: Int

    /// Loads the instances stored over the API. A stored manifest that no longer validates
    /// (written by another version) is an error naming the instance and field.
    public convenience init(
        database: AgentDatabase?, reserved: Set<String> = [], limit: Int = defaultLimit
    ) throws(OutboxError) {
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
        self.init(database: database, loaded: entries, reserved: reserved, limit: limit)
    }

    /// A registry held in memory only: for `hostmeter sample` and tests.
    public convenience init(reserved: Set<String> = [], limit: Int = defaultLimit) {
        self.init(database: nil, loaded: Entries(), reserved: reserved, limit: limit)
    }

    private init(database: AgentDatabase?, loaded: Entries, reserved: Set<String>, limit: Int) {
        self.database = database
        self.entries = Mutex(loaded)
        self.reserved = reserved
        self.limit = max(1, limit)
    }

    /// Every instance in effect, ordered by id. Sorted once per change, not per call.
    public var instances: [RegisteredInstance] {
        entries.withLock { entries in
            if let sorted = entries.sorted { return sorted }
            var result = entries.api.values.map { RegisteredInstance(manifest: $0, source: .api) }
            result.reserveCapacity(entries.api.count + entries.files.count)
            for (id, entry) in entries.files where entries.api[id] == nil {
                result.append(RegisteredInstance(manifest: entry.manifest, source: .file(entry.file)))
            }
            result.sort { $0.manifest.instanceID < $1.manifest.instanceID }
            entries.sorted = result
            return result
        }
    }

    /// How many instances are in effect.
    public var count: Int { entries.withLock { $0.api.count + $0.files.count } }

    /// The instance with this id, if registered.
    /// The instance whose id is `id`, byte for byte (a canonically equivalent spelling is not it).
    public func instance(_ id: String) -> RegisteredInstance? {
        let found = entries.withLock { entries -> RegisteredInstance? in
            if let manifest = entries.api[id] { return RegisteredInstance(manifest: manifest, source: .api) }
            return entries.files[id].map { RegisteredInstance(manifest: $0.manifest, source: .file($0.file)) }
        }
        guard let found, found.manifest.instanceID.utf8.elementsEqual(id.utf8) else { return nil }
        return found
    }

    /// Manifest files refused at the latest scan.
    public var problems: [ManifestProblem] { entries.withLock { $0.problems } }

    /// The result of a scan of `instances_dir`: valid manifests by file (in file-name order) and
    /// the files refused. A later file naming an id an earlier one already has, or one an API
    /// registration has, is refused too, and so are files beyond the limit (ids in effect keep
    /// their place; new ones are taken in file-name order while there is room).
    public func replaceFiles(_ manifests: [(file: String, manifest: InstanceManifest)], problems: [ManifestProblem]) {
        entries.withLock { entries in
            var files: [String: (manifest: InstanceManifest, file: String)] = [:]
            var allProblems = problems
            var candidates: [(id: String, file: String, manifest: InstanceManifest)] = []
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
                    candidates.append((id, file, manifest))
                }
            }
            var room = limit - entries.api.count - entries.reserving.count
            let incumbents = candidates.filter { entries.files[$0.id] != nil }
            let newcomers = candidates.filter { entries.files[$0.id] == nil }
            for candidate in incumbents + newcomers {
                if room > 0 {
                    room -= 1
                } else {
                    files[candidate.id] = nil
                    allProblems.append(
                        ManifestProblem(
                            file: candidate.file,
                            message: "instance_id: \"\(candidate.id)\" is not metered: \(limit) instances are registered, "
                                + "the most this agent meters (max_instances); remove one or raise max_instances"))
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
                entries.changed()
            }
        }
    }

    /// Registers or replaces an instance over the API; true if it is new. A new id is refused
    /// when `limit` instances are in effect or being registered.
    @discardableResult
    public func put(_ manifest: InstanceManifest, now: Double) throws(InstanceRegistryError) -> Bool {
        let id = manifest.instanceID
        guard !reserved.contains(id) else { throw .reserved(instanceID: id) }
        // The room is taken before the write, so concurrent PUTs cannot together pass the limit.
        let reservedHere = try entries.withLock { entries throws(InstanceRegistryError) -> Bool in
            if let other = (entries.api[id] ?? entries.files[id]?.manifest)?.instanceID, !other.utf8.elementsEqual(id.utf8) {
                throw .equivalentID(instanceID: id, registered: other)
            }
            if let file = entries.files[id]?.file { throw .definedByFile(instanceID: id, file: file) }
            guard entries.api[id] == nil, !entries.reserving.contains(id) else { return false }
            guard entries.count < limit else { throw .full(instanceID: id, limit: limit) }
            entries.reserving.insert(id)
            return true
        }
        do {
            try database?.storeInstance(StoredInstance(instanceID: id, manifest: manifest.json(), updatedAt: now))
        } catch {
            if reservedHere { entries.withLock { _ = $0.reserving.remove(id) } }
            throw .store(error)
        }
        return entries.withLock { entries in
            if reservedHere { entries.reserving.remove(id) }
            let previous = entries.api.updateValue(manifest, forKey: id)
            if previous != manifest { entries.changed() }
            return previous == nil
        }
    }

    /// Removes an instance registered over the API; false if there is none. The recorder bills its
    /// final period at the next sample.
    public func delete(_ id: String) throws(InstanceRegistryError) -> Bool {
        // Only the same bytes name the instance: a canonically equivalent spelling deletes nothing.
        if let other = entries.withLock({ ($0.api[id] ?? $0.files[id]?.manifest)?.instanceID }),
            !other.utf8.elementsEqual(id.utf8)
        {
            return false
        }
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
            if entries.api.removeValue(forKey: id) != nil { entries.changed() }
        }
        return existed
    }
}
