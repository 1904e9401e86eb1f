/// What makes up one instance (VM) on the host: its cgroup, its taps, its disks.
public struct InstanceTarget: Sendable, Hashable {
    /// Relative to the cgroup hierarchies' roots, as /proc/PID/cgroup prints it; nil for an
    /// instance metered without a cgroup.
    public var cgroupPath: String?
    public var interfaces: [String]
    /// Absolute paths of image files or block devices.
    public var disks: [String]

    public init(cgroupPath: String? = nil, interfaces: [String] = [], disks: [String] = []) {
        self.cgroupPath = cgroupPath
        self.interfaces = interfaces
        self.disks = disks
    }
}

/// What one probe of an instance found. Each part is read on its own: a broken file or a missing
/// disk leaves that part out and the rest in.
public struct InstanceProbeResult: Sendable, Equatable {
    public var cgroup: CgroupUsage?
    /// In the target's order, those that could be read.
    public var interfaces: [InterfaceCounters]
    /// In the target's order, those that could be read.
    public var disks: [DiskUsage]
    /// What is not there, for people: "cgroup machine.slice/x missing", "interface tap3 missing".
    /// A missing cgroup or interface means the instance is not running.
    public var missing: [String]
    /// Everything else that failed: broken files, invalid names, and missing disks (a disk image
    /// can be gone while its VM runs, so it is an error to see, not a sign the VM stopped).
    public var errors: [ProbeError]

    public init(
        cgroup: CgroupUsage? = nil, interfaces: [InterfaceCounters] = [], disks: [DiskUsage] = [],
        missing: [String] = [], errors: [ProbeError] = []
    ) {
        self.cgroup = cgroup
        self.interfaces = interfaces
        self.disks = disks
        self.missing = missing
        self.errors = errors
    }

    public var isRunning: Bool { missing.isEmpty }
}

/// Reads every part of an instance: cgroup usage, tap counters and disk allocation.
public struct InstanceProbe: Sendable {
    public let cgroups: CgroupReader
    public let sys: SysFS
    public let disks: DiskAllocation

    /// `rootfs` is prepended to cgroup mount points and disk paths (both are paths on the host's
    /// /); `sys` is where /sys/class/net and /sys/dev/block are read.
    public init(layout: CgroupLayout, sys: SysFS = SysFS(), rootfs: String = "/") {
        self.cgroups = CgroupReader(layout: layout, root: rootfs)
        self.sys = sys
        self.disks = DiskAllocation(rootfs: rootfs, sys: sys)
    }

    /// A probe for the hierarchies this process's mount table shows (`procRoot`/self/mountinfo).
    public static func detect(
        procRoot: String = "/proc", sysRoot: String = "/sys", rootfs: String = "/"
    ) throws(ProbeError) -> InstanceProbe {
        let layout = CgroupLayout.detect(try ProcFS(root: procRoot).mountinfo())
        return InstanceProbe(layout: layout, sys: SysFS(root: sysRoot), rootfs: rootfs)
    }

    /// Probes `target`; never throws, every failure is in the result. Opens and closes every file;
    /// `KeptInstances.probe` keeps them open between probes.
    public func probe(_ target: InstanceTarget) -> InstanceProbeResult {
        probe(target, files: KeptInstanceFiles(), buffer: ReadBuffer(capacity: 1024))
    }

    /// Probes `target` through the descriptors `files` keeps from earlier probes of the instance.
    public func probe(_ target: InstanceTarget, files: KeptInstanceFiles, buffer: ReadBuffer) -> InstanceProbeResult {
        var result = InstanceProbeResult()
        if let path = target.cgroupPath {
            do throws(ProbeError) {
                result.cgroup = try cgroups.read(path, kept: files.cgroup, buffer: buffer)
            } catch {
                if error.isMissing { result.missing.append("cgroup \(path) missing") } else { result.errors.append(error) }
            }
        } else {
            files.cgroup.close()
        }
        files.keepInterfaces(target.interfaces)
        result.interfaces.reserveCapacity(target.interfaces.count)
        for (name, kept) in zip(target.interfaces, files.interfaces) {
            do throws(ProbeError) {
                result.interfaces.append(try sys.interfaceCounters(name, kept: kept, buffer: buffer))
            } catch {
                if error.isMissing { result.missing.append("interface \(name) missing") } else { result.errors.append(error) }
            }
        }
        result.disks.reserveCapacity(target.disks.count)
        for path in target.disks {
            do throws(ProbeError) {
                result.disks.append(try disks.usage(path))
            } catch {
                result.errors.append(error)
            }
        }
        return result
    }
}
