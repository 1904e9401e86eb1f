import Probes

extension AgentConfiguration {
    /// `gpu:`: NVIDIA GPUs through NVML.
    public struct GPUSettings: Sendable, Equatable {
        /// Meter NVIDIA GPUs when libnvidia-ml is present (absent: nothing happens).
        public var enabled = true
        public var nvmlLibrary = "libnvidia-ml.so.1"
    }

    /// `probes:`: where the host is read from and which of its disks, interfaces and filesystems.
    static func probes(_ node: ConfigNode) throws(ConfigurationError) -> HostSamplerConfiguration {
        let keys = try node.section()
        var probes = HostSamplerConfiguration(
            procRoot: try keys["proc_root"]?.string(default: "/proc") ?? "/proc",
            sysRoot: try keys["sys_root"]?.string(default: "/sys") ?? "/sys",
            rootfs: try keys["rootfs"]?.string(default: "/") ?? "/")
        if let collectors = keys["collectors"], !collectors.isNull {
            var names = Set<CollectorName>()
            for item in try collectors.sequence() {
                names.insert(try item.choice(default: CollectorName.cpu))
            }
            probes.collectors = names
        }
        if let disks = keys["disks"] {
            let diskKeys = try disks.section()
            probes.disks.wholeDisksOnly = try diskKeys["whole_disks_only"]?.bool(default: probes.disks.wholeDisksOnly)
                ?? probes.disks.wholeDisksOnly
            if let include = diskKeys["include"] { probes.disks.devices.include = try include.strings() }
            if let exclude = diskKeys["exclude"] { probes.disks.devices.exclude = try exclude.strings() }
        }
        if let interfaces = keys["interfaces"] {
            let interfaceKeys = try interfaces.section()
            if let include = interfaceKeys["include"] { probes.interfaces.include = try include.strings() }
            if let exclude = interfaceKeys["exclude"] { probes.interfaces.exclude = try exclude.strings() }
        }
        if let filesystems = keys["filesystems"] {
            let filesystemKeys = try filesystems.section()
            if let types = filesystemKeys["exclude_types"] { probes.filesystems.excludedTypes = Set(try types.strings()) }
            if let include = filesystemKeys["include_mount_points"] {
                probes.filesystems.mountPoints.include = try include.strings()
            }
            if let exclude = filesystemKeys["exclude_mount_points"] {
                probes.filesystems.mountPoints.exclude = try exclude.strings()
            }
        }
        return probes
    }
}

extension AgentConfiguration.GPUSettings {
    /// The `gpu:` section.
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        enabled = try keys["enabled"]?.bool(default: enabled) ?? enabled
        nvmlLibrary = try keys["nvml_library"]?.string(default: nvmlLibrary) ?? nvmlLibrary
    }
}
