import Synchronization

/// The kept descriptors of one instance (VM): its cgroup's files (`KeptCgroup`, 4) and each tap's
/// (`KeptInterface`, 3 each). Disks keep none: an image is sized by stat(2) of its path, which is
/// what can change (a new image at the same path), and a block device by one sysfs read.
///
/// So an instance with one tap holds 7 descriptors, and 1,000 of them 7,000, within the systemd
/// unit's `LimitNOFILE=65536`; past `DescriptorBudget.limit` files are opened and closed at every
/// probe instead. Not thread-safe: `KeptInstances` reads it under its lock.
public final class KeptInstanceFiles {
    let cgroup = KeptCgroup()
    /// One per interface of the target, in its order.
    private(set) var interfaces: [KeptInterface] = []
    private var interfaceNames: [String] = []

    public init() {}

    /// Descriptors held now.
    public var descriptorCount: Int { cgroup.descriptorCount + interfaces.reduce(0) { $0 + $1.descriptorCount } }

    /// Lines `interfaces` up with `names`, keeping the descriptors of names it already had.
    func keepInterfaces(_ names: [String]) {
        guard names != interfaceNames else { return }
        var byName: [String: KeptInterface] = [:]
        for (name, kept) in zip(interfaceNames, interfaces) { byName[name] = kept }
        interfaces = names.map { byName.removeValue(forKey: $0) ?? KeptInterface() }
        interfaceNames = names
    }
}

/// The kept files of every instance a sampler probes, by instance ID, with the one read buffer they
/// share. An instance that is no longer registered has its descriptors closed by `retain(only:)`.
public final class KeptInstances: Sendable {
    private let state: Mutex<State>

    private struct State: ~Copyable {
        var files: [String: KeptInstanceFiles] = [:]
        let buffer = ReadBuffer(capacity: 1024)
    }

    public init() { state = Mutex(State()) }

    /// Probes `target`, the instance `id`, through its kept descriptors (made on its first probe).
    public func probe(_ probe: InstanceProbe, id: String, target: InstanceTarget) -> InstanceProbeResult {
        state.withLock { state in
            let files: KeptInstanceFiles
            if let known = state.files[id] {
                files = known
            } else {
                files = KeptInstanceFiles()
                state.files[id] = files
            }
            return probe.probe(target, files: files, buffer: state.buffer)
        }
    }

    /// Closes the descriptors of every instance not in `ids`.
    public func retain(only ids: Set<String>) {
        state.withLock { state in
            guard state.files.count > ids.count || state.files.keys.contains(where: { !ids.contains($0) }) else { return }
            state.files = state.files.filter { ids.contains($0.key) }
        }
    }

    /// Instances with kept files.
    public var count: Int { state.withLock { $0.files.count } }

    /// Descriptors held now, for all instances.
    public var descriptorCount: Int { state.withLock { $0.files.values.reduce(0) { $0 + $1.descriptorCount } } }
}
