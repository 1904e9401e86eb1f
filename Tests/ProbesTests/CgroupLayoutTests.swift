import Testing

@testable import Probes

struct CgroupLayoutTests {
    // MARK: The fixture trees

    @Test func aUnifiedHostHasOnlyTheCgroup2Mount() throws {
        let layout = try Fixtures.layout(Fixtures.cgroupV2)
        #expect(layout == CgroupLayout(unified: "/sys/fs/cgroup", controllers: [:]))
        #expect(layout.kind == .unified)
    }

    @Test func aLegacyHostListsEachControllerOfEachMount() throws {
        let layout = try Fixtures.layout(Fixtures.cgroupV1)
        #expect(layout.kind == .legacy)
        #expect(layout.unified == nil)
        #expect(
            layout.controllers == [
                "cpuset": "/sys/fs/cgroup/cpuset",
                "cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                "memory": "/sys/fs/cgroup/memory", "blkio": "/sys/fs/cgroup/blkio",
                "net_cls": "/sys/fs/cgroup/net_cls,net_prio", "net_prio": "/sys/fs/cgroup/net_cls,net_prio",
                "pids": "/sys/fs/cgroup/pids",
            ])
    }

    @Test func systemdsHybridHasBoth() throws {
        let layout = try Fixtures.layout(Fixtures.cgroupHybrid)
        #expect(layout.kind == .hybrid)
        #expect(layout.unified == "/sys/fs/cgroup/unified")
        #expect(layout.controllers["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct")
        #expect(layout.controllers["memory"] == "/sys/fs/cgroup/memory")
        #expect(layout.controllers["blkio"] == "/sys/fs/cgroup/blkio")
        #expect(layout.controllers["systemd"] == nil)
        #expect(layout.controllers.count == 6)
    }

    /// The captured tree of the host the tests were written on: every v1 controller on its own
    /// mount, cgroup2 at /sys/fs/cgroup/unified.
    @Test func theCapturedHostIsHybridWithSeparateCPUAndCPUAcct() throws {
        let layout = CgroupLayout.detect(try ProcFS(root: Fixtures.linux618Proc).mountinfo())
        #expect(layout.kind == .hybrid)
        #expect(layout.unified == "/sys/fs/cgroup/unified")
        #expect(layout.controllers["cpu"] == "/sys/fs/cgroup/cpu")
        #expect(layout.controllers["cpuacct"] == "/sys/fs/cgroup/cpuacct")
        #expect(layout.controllers["memory"] == "/sys/fs/cgroup/memory")
        #expect(layout.controllers["blkio"] == "/sys/fs/cgroup/blkio")
    }

    // MARK: Real mountinfo text

    @Test(arguments: [
        // Fedora 39 (unified).
        (
            "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,seclabel,nsdelegate,memory_recursiveprot\n",
            CgroupLayout.Kind.unified
        ),
        // Ubuntu 20.04 (hybrid).
        (
            """
            31 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
            32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
            33 31 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
            36 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct

            """,
            .hybrid
        ),
        // CentOS 7 (legacy).
        (
            """
            25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
            29 24 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory

            """,
            .legacy
        ),
        // A container without cgroups mounted.
        ("100 99 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n", .none),
        // Only the named systemd hierarchy beside cgroup2 (docker on a unified host with an old image):
        // no v1 controller, so nothing is measured there.
        (
            """
            30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
            31 30 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd

            """,
            .unified
        ),
    ])
    func kindFromRealMountinfo(text: String, kind: CgroupLayout.Kind) throws {
        #expect(CgroupLayout.detect(try Mountinfo.parse(text)).kind == kind)
    }

    @Test func flagsBesideControllerNamesAreNotControllers() throws {
        let text =
            "40 31 0:40 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset,noprefix,cpuset_v2_mode,clone_children,xattr,favordynmods,release_agent=/sbin/agent\n"
        #expect(CgroupLayout.detect(try Mountinfo.parse(text)).controllers == ["cpuset": "/sys/fs/cgroup/cpuset"])
    }

    @Test func aMountOfTheHierarchysRootWinsOverASubtreeMountedBefore() throws {
        // A container runtime bind-mounted a subtree first; the host's own mount of the root is later.
        let text = """
            50 40 0:29 /docker/abc /srv/cg/cpuacct rw - cgroup cgroup rw,cpuacct
            51 40 0:29 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
            52 40 0:29 / /mnt/again rw - cgroup cgroup rw,cpuacct
            60 40 0:38 /machine.slice /srv/cg/unified rw - cgroup2 cgroup2 rw
            61 40 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw

            """
        let layout = CgroupLayout.detect(try Mountinfo.parse(text))
        #expect(layout.controllers == ["cpuacct": "/sys/fs/cgroup/cpuacct"])
        #expect(layout.unified == "/sys/fs/cgroup/unified")
    }

    @Test func withOnlySubtreeMountsTheFirstIsUsed() throws {
        let text = """
            50 40 0:29 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
            51 40 0:29 /docker/def /mnt/memory rw - cgroup cgroup rw,memory

            """
        #expect(CgroupLayout.detect(try Mountinfo.parse(text)).controllers == ["memory": "/sys/fs/cgroup/memory"])
    }

    @Test func kindFollowsTheFields() {
        #expect(CgroupLayout().kind == .none)
        #expect(CgroupLayout(unified: "/x").kind == .unified)
        #expect(CgroupLayout(controllers: ["memory": "/m"]).kind == .legacy)
        #expect(CgroupLayout(unified: "/x", controllers: ["memory": "/m"]).kind == .hybrid)
    }
}
