#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The descriptors of one cgroup's files kept between reads by `CgroupReader.read(_:kept:buffer:)`,
/// per hierarchy: the unified tree, v1 cpuacct, memory and blkio.
///
/// A hierarchy's files are kept when each descriptor fits in the `DescriptorBudget`; otherwise its
/// directory is opened again at every read, as before files were kept. A file that was not there
/// (io.stat of a cgroup without the io controller) is looked for with access(2) at each read, and
/// once it appears (the controller enabled since) the directory is read afresh. The kept
/// directory's inode is the generation: the descriptors stay on the cgroup they were opened on, and
/// once one fails (the cgroup was removed) the directory is opened again by path.
///
/// Descriptors per instance: on a hybrid host (cgroup2 for CPU, v1 memory and blkio) 4, cpu.stat,
/// memory.usage_in_bytes, memory.limit_in_bytes and one blkio file; on a v2 host with memory and io
/// enabled 4 (cpu.stat, memory.current, memory.max, io.stat); on a v1 host 4 (cpuacct.usage, the
/// two memory files, one blkio file). Closed when the object is released.
///
/// Not thread-safe: one owner reads it at a time (`KeptInstanceFiles` under its lock).
public final class KeptCgroup {
    static let unified = 0
    static let cpuacct = 1
    static let memory = 2
    static let blkio = 3

    /// The cgroup path as asked, for which `directories` were computed.
    private(set) var path: String?
    /// The cgroup's directory in each hierarchy (unified, cpuacct, memory, blkio); nil where the
    /// hierarchy is not mounted.
    private(set) var directories: [String?] = [nil, nil, nil, nil]
    private var kept: [KeptDirectory?] = [nil, nil, nil, nil]

    public init() {}

    /// Descriptors held now.
    public var descriptorCount: Int { kept.reduce(0) { $0 + ($1?.files.count ?? 0) } }

    /// Closes every descriptor; the next read opens the directories again.
    public func close() { kept = [nil, nil, nil, nil] }

    /// Forgets everything kept for another path.
    func reset(path: String, directories: [String?]) {
        self.path = path
        self.directories = directories
        close()
    }

    /// One hierarchy's open files.
    private struct KeptDirectory {
        let inode: UInt64
        /// For each group of `read` that had one, the file found.
        let files: [(name: String, file: KeptFile)]
        /// The paths of the groups that had none.
        let absent: [[String]]
    }

    /// Reads the cgroup directory `directory` of hierarchy `hierarchy`: for each group of names, the
    /// first file of the group that exists goes through `body` with its name, bytes and path. The
    /// directory's inode, or nil when there is no such directory.
    ///
    /// Kept descriptors are read first. One that fails to read (.unreadable: ENODEV for a removed
    /// cgroup, ESTALE for a removed fixture file) drops the hierarchy's descriptors and the
    /// directory is read afresh, within this call; `body` may then see a file twice and keeps the
    /// last value. Any other error (a file that does not parse) is thrown, and drops them too.
    func read(
        _ hierarchy: Int, _ directory: String, groups: [[String]], buffer: ReadBuffer,
        _ body: (String, [UInt8], String) throws(ProbeError) -> Void
    ) throws(ProbeError) -> UInt64? {
        if let current = kept[hierarchy], !current.absent.contains(where: { $0.contains { access($0, F_OK) == 0 } }) {
            do throws(ProbeError) {
                for entry in current.files {
                    try body(entry.name, try entry.file.read(into: buffer), entry.file.path)
                }
                return current.inode
            } catch {
                kept[hierarchy] = nil
                guard case .unreadable = error else { throw error }
            }
        }
        kept[hierarchy] = nil
        guard let opened = try OpenDirectory.open(directory) else { return nil }
        let inode = try opened.inode()
        var files: [(name: String, file: KeptFile)] = []
        files.reserveCapacity(groups.count)
        var absent: [[String]] = []
        var complete = true
        for group in groups {
            var found = false
            for name in group {
                guard let file = try KeptFile.open(name, in: opened) else { continue }
                try body(name, try file.read(into: buffer), file.path)
                files.append((name, file))
                complete = complete && file.isKept
                found = true
                break
            }
            if !found { absent.append(group.map { opened.filePath($0) }) }
        }
        if complete { kept[hierarchy] = KeptDirectory(inode: inode, files: files, absent: absent) }
        return inode
    }
}
