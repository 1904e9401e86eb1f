/// Which cgroup hierarchies the host has mounted and where, detected from /proc/self/mountinfo
/// rather than assumed: /sys/fs/cgroup is a cgroup2 mount on a unified host, a tmpfs of v1 mounts
/// on a legacy one, and both (v2 at /sys/fs/cgroup/unified) under systemd's hybrid mode.
public struct CgroupLayout: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// cgroup2 only.
        case unified
        /// v1 controller hierarchies only.
        case legacy
        /// Both: systemd's hybrid mode, or v1 controllers beside a cgroup2 mount.
        case hybrid
        /// No cgroup hierarchy at all; no instance can be measured.
        case none
    }

    /// Mount point of the cgroup2 hierarchy, an absolute path on the host.
    public var unified: String?
    /// Mount point of each v1 controller (`cpuacct`, `memory`, `blkio`, `cpu`, `pids`…); controllers
    /// mounted together (`cpu,cpuacct`) share one. Named hierarchies without a controller
    /// (`name=systemd`) are not listed: they measure nothing.
    public var controllers: [String: String]

    public init(unified: String? = nil, controllers: [String: String] = [:]) {
        self.unified = unified
        self.controllers = controllers
    }

    public var kind: Kind {
        switch (unified != nil, !controllers.isEmpty) {
        case (true, false): .unified
        case (false, true): .legacy
        case (true, true): .hybrid
        case (false, false): .none
        }
    }

    /// Options that cgroup1_show_options (kernel/cgroup/cgroup-v1.c) prints beside controller
    /// names; `name=` and `release_agent=` are told apart by their '='.
    private static let v1Flags: Set<Substring> = [
        "rw", "ro", "noprefix", "cpuset_v2_mode", "favordynmods", "xattr", "clone_children",
    ]

    /// The layout the mount table describes.
    ///
    /// A hierarchy can be mounted more than once (bind mounts, a container's view). The mount of
    /// the hierarchy's root ("/" in mountinfo's root field) wins, then the first in the table: a
    /// mount of a subtree only shows cgroups below it, under paths that do not start at the
    /// hierarchy's root.
    public static func detect(_ mounts: [MountInfo]) -> CgroupLayout {
        var layout = CgroupLayout()
        var unifiedIsRoot = false
        var controllerIsRoot: [String: Bool] = [:]
        for mount in mounts {
            let isRoot = mount.root == "/"
            switch mount.fsType {
            case "cgroup2":
                if layout.unified == nil || (isRoot && !unifiedIsRoot) {
                    layout.unified = mount.mountPoint
                    unifiedIsRoot = isRoot
                }
            case "cgroup":
                for option in mount.superOptions.split(separator: ",") {
                    guard !v1Flags.contains(option), !option.contains("=") else { continue }
                    let controller = String(option)
                    if layout.controllers[controller] == nil || (isRoot && controllerIsRoot[controller] != true) {
                        layout.controllers[controller] = mount.mountPoint
                        controllerIsRoot[controller] = isRoot
                    }
                }
            default:
                continue
            }
        }
        return layout
    }
}
