import Testing

@testable import Probes

struct NameFilterTests {
    @Test(arguments: ["", "eth0", "lo", "/var/lib/docker/x", ".hidden"])
    func anEmptyFilterSelectsEverything(name: String) {
        #expect(NameFilter().selects(name))
    }

    @Test(arguments: [
        // (include, exclude, name, selected)
        ([] as [String], ["lo"], "lo", false),
        ([], ["lo"], "lo0", true),  // exclude is a glob, not a prefix
        ([], ["lo"], "eth0", true),
        (["eth*"], [], "eth0", true),
        (["eth*"], [], "eth0.100", true),
        (["eth*"], [], "wlan0", false),
        (["eth*", "wl*"], [], "wlan0", true),  // any include is enough
        (["eth*"], ["eth0.*"], "eth0.100", false),  // exclude wins over include
        (["eth*"], ["eth0.*"], "eth0", true),
        (["sd?"], [], "sda", true),
        (["sd?"], [], "sda1", false),
        (["sd[a-c]"], [], "sdb", true),
        (["sd[a-c]"], [], "sdd", false),
        (["sd[!a]"], [], "sda", false),
        (["sd[!a]"], [], "sdb", true),
        (["nvme[0-9]n[0-9]"], [], "nvme0n1", true),
        (["nvme[0-9]n[0-9]"], [], "nvme0n1p1", false),
        ([], ["veth*", "br-*", "docker*"], "br-lan", false),
        ([], ["veth*", "br-*", "docker*"], "veth1a2b-c.3", false),
        ([], ["veth*", "br-*", "docker*"], "bond0", true),
        (["ETH*"], [], "eth0", false),  // case matters
    ])
    func includeAndExcludeGlobs(include: [String], exclude: [String], name: String, selected: Bool) {
        #expect(NameFilter(include: include, exclude: exclude).selects(name) == selected)
    }

    @Test(arguments: [
        ("/var/lib/docker/*", "/var/lib/docker/overlay2/abc/merged", true),  // '*' crosses '/'
        ("/proc/*", "/proc/sys/fs/binfmt_misc", true),
        ("/proc/*", "/proc", false),
        ("/proc/*", "/processes", false),
        ("*", ".hidden", true),  // a leading dot is not special
        (#"a\*b"#, "a*b", true),  // a backslash quotes the next character
        (#"a\*b"#, "axb", false),
        ("", "", true),
        ("", "x", false),
    ])
    func matchesAsFnmatchDoes(pattern: String, name: String, matches: Bool) {
        #expect(NameFilter.matches(pattern: pattern, name) == matches)
    }

    @Test func defaultMountPointsLeaveOutPseudoAndContainerTrees() {
        let filter = FilesystemSelection.defaultMountPoints
        #expect(filter.selects("/"))
        #expect(filter.selects("/home"))
        #expect(filter.selects("/var/lib/docker"))
        #expect(!filter.selects("/var/lib/docker/overlay2/abc/merged"))
        #expect(!filter.selects("/var/lib/kubelet/pods/123/volumes/x"))
        #expect(!filter.selects("/run/credentials/getty@tty1.service"))
        #expect(!filter.selects("/dev/shm"))
    }
}
