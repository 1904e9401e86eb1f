import Synchronization

/// Which mounted filesystems are metered.
public struct FilesystemSelection: Sendable, Equatable {
    /// Filesystem types left out: pseudo and memory filesystems (no disk behind them), overlay and
    /// squashfs (their space is counted on the filesystem below), and network filesystems, whose
    /// statvfs can hang for minutes when the server is gone and which are not this host's storage.
    public var excludedTypes: Set<String>
    /// Mount point globs.
    public var mountPoints: NameFilter

    public init(
        excludedTypes: Set<String> = FilesystemSelection.defaultExcludedTypes,
        mountPoints: NameFilter = FilesystemSelection.defaultMountPoints
    ) {
        self.excludedTypes = excludedTypes
        self.mountPoints = mountPoints
    }

    public static let defaultExcludedTypes: Set<String> = [
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
        "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore", "ramfs", "rpc_pipefs",
        "securityfs", "selinuxfs", "sysfs", "tmpfs", "tracefs", "overlay", "squashfs", "iso9660",
        "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal", "nfs", "nfs4", "cifs", "smb3", "ceph", "glusterfs",
        "fuse.sshfs", "9p", "virtiofs",
    ]

    public static let defaultMountPoints = NameFilter(
        exclude: ["/proc/*", "/sys/*", "/dev/*", "/run/credentials/*", "/var/lib/docker/*",
                  "/var/lib/containers/storage/*", "/var/lib/kubelet/pods/*"])
}

/// Mounted filesystems from mountinfo and their space from statvfs.
///
/// Each filesystem (major:minor) is counted once, at its first mount in the table: bind mounts
/// show the same space again and would double storage_gb.
final class FilesystemCollector: HostCollector {
    let procFS: ProcFS
    /// /proc/self/mountinfo, kept open: "self" is resolved once, to this process, whose mount
    /// namespace it shows.
    let mountinfo: KeptPath
    /// The host's root as this process sees it (node_exporter's `--path.rootfs`): mount points are
    /// stat'ed under it, so an agent in a container with the host's / mounted at /host still works.
    let rootfs: String
    let selection: FilesystemSelection
    /// The mount table changes rarely: the last raw mountinfo and the mounts selected from it, so
    /// an unchanged table costs one comparison instead of a parse.
    private let selected = Mutex<(raw: [UInt8], mounts: [MountInfo])>(([], []))

    init(procFS: ProcFS, rootfs: String, selection: FilesystemSelection) {
        self.procFS = procFS
        self.mountinfo = KeptPath(procFS.path("self/mountinfo"), capacity: 16 << 10)
        self.rootfs = rootfs
        self.selection = selection
    }

    var kind: CollectorName { .filesystem }

    func collect(into sample: inout HostSample) throws(ProbeError) {
        var usages: [FilesystemUsage] = []
        for mount in try selectedMounts() {
            let path = rootfs == "/" ? mount.mountPoint : rootfs + mount.mountPoint
            do {
                let space = try FilesystemSpace.of(path)
                usages.append(
                    FilesystemUsage(
                        mountPoint: mount.mountPoint, source: mount.source, fsType: mount.fsType,
                        major: mount.major, minor: mount.minor, space: space))
            } catch {
                sample.failures.append(CollectorFailure(collector: .filesystem, error: error))
            }
        }
        sample.filesystems = usages
    }

    /// The mounts to stat: types and mount points selected, and each filesystem (major:minor) once,
    /// at its first mount in the table, since bind mounts show the same space again and would
    /// double storage_gb.
    ///
    /// The kernel says when the mount table changed (POLLPRI on the kept mountinfo descriptor), so
    /// an unchanged table is not even read; a table read again (a change, a fixture file) that
    /// equals the last one is compared and dropped rather than parsed. The selection is made in
    /// the read's closure, so a table that does not parse drops the descriptor and is read again
    /// next time.
    private func selectedMounts() throws(ProbeError) -> [MountInfo] {
        let fresh = try mountinfo.readIfMountTableChanged { (raw, path) throws(ProbeError) -> [MountInfo] in
            if let cached = selected.withLock({ $0.raw == raw ? $0.mounts : nil }) { return cached }
            var seen = Set<UInt64>()
            let mounts = try Mountinfo.parse(raw, path: path).filter { mount in
                !selection.excludedTypes.contains(mount.fsType) && selection.mountPoints.selects(mount.mountPoint)
                    && seen.insert(UInt64(mount.major) << 32 | UInt64(mount.minor)).inserted
            }
            selected.withLock { $0 = (raw, mounts) }
            return mounts
        }
        return fresh ?? selected.withLock { $0.mounts }
    }
}
