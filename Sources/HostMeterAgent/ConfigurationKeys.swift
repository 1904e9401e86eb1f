import AgentAPI
import Foundation
import Yams
import InputGuards

/// One configuration key: its dotted path, its default as docs/CONFIG.md shows it, and whether a
/// SIGHUP applies it to the running agent.
public struct ConfigurationKey: Sendable, Equatable {
    public var path: String
    public var defaultValue: String
    public var reloadable: Bool

    /// `HOSTMETER_` and the path in capitals with `_` for `.`: `sink.url` → `HOSTMETER_SINK_URL`.
    public var environmentName: String {
        "HOSTMETER_" + path.uppercased().replacingOccurrences(of: ".", with: "_")
    }
}

extension AgentConfiguration {
    /// Every key the configuration accepts. docs/CONFIG.md documents exactly these, with these
    /// defaults (a test keeps them in sync), and each can be set from the environment.
    public static let keys: [ConfigurationKey] = [
        .init(path: "host_id", defaultValue: "the hostname", reloadable: false),
        .init(path: "interval_seconds", defaultValue: "30", reloadable: false),
        .init(path: "sample_seconds", defaultValue: "min(interval_seconds, 5)", reloadable: false),
        .init(path: "state_dir", defaultValue: "/var/lib/hostmeter", reloadable: false),
        .init(path: "instances_dir", defaultValue: "/etc/hostmeter/instances.d", reloadable: false),
        .init(path: "instance_sample_seconds", defaultValue: "min(interval_seconds, 15)", reloadable: false),
        .init(path: "max_instances", defaultValue: "4096", reloadable: false),
        .init(path: "schema_version", defaultValue: "\"1.0\"", reloadable: false),
        .init(path: "api.listen", defaultValue: "127.0.0.1:9780", reloadable: false),
        .init(path: "api.tokens_file", defaultValue: "null", reloadable: false),
        .init(path: "api.auth_health_and_metrics", defaultValue: "true", reloadable: false),
        .init(path: "api.allow_remote_without_tokens", defaultValue: "false", reloadable: false),
        .init(path: "api.max_connections_per_peer", defaultValue: "32", reloadable: false),
        .init(path: "api.request_timeout_seconds", defaultValue: "10", reloadable: false),
        .init(path: "api.tls.certificate_file", defaultValue: "null", reloadable: false),
        .init(path: "api.tls.key_file", defaultValue: "null", reloadable: false),
        .init(path: "api.tls.client_ca_file", defaultValue: "null", reloadable: false),
        .init(path: "host.enabled", defaultValue: "true", reloadable: false),
        .init(path: "host.instance_id", defaultValue: "host_id", reloadable: false),
        .init(path: "host.user_id", defaultValue: "operator", reloadable: false),
        .init(path: "host.org_id", defaultValue: "null", reloadable: false),
        .init(path: "sink.type", defaultValue: "file", reloadable: true),
        .init(path: "sink.url", defaultValue: "null", reloadable: true),
        .init(path: "sink.path", defaultValue: "<state_dir>/events.jsonl", reloadable: true),
        .init(path: "sink.token_file", defaultValue: "null", reloadable: true),
        .init(path: "sink.batch_max_events", defaultValue: "500", reloadable: false),
        .init(path: "sink.timeout_seconds", defaultValue: "30", reloadable: true),
        .init(path: "sink.connect_timeout_seconds", defaultValue: "10", reloadable: true),
        .init(path: "sink.ca_file", defaultValue: "null", reloadable: true),
        .init(path: "sink.headers", defaultValue: "{}", reloadable: true),
        .init(path: "retry.base_seconds", defaultValue: "1", reloadable: false),
        .init(path: "retry.cap_seconds", defaultValue: "300", reloadable: false),
        .init(path: "circuit_breaker.failure_threshold", defaultValue: "5", reloadable: false),
        .init(path: "circuit_breaker.open_seconds", defaultValue: "30", reloadable: false),
        .init(path: "outbox.max_bytes", defaultValue: "1073741824", reloadable: false),
        .init(path: "thresholds", defaultValue: "[]", reloadable: true),
        .init(path: "alerting.alertmanager_url", defaultValue: "null", reloadable: false),
        .init(path: "gpu.enabled", defaultValue: "true", reloadable: false),
        .init(path: "gpu.nvml_library", defaultValue: "libnvidia-ml.so.1", reloadable: false),
        .init(path: "log.level", defaultValue: "info", reloadable: true),
        .init(path: "log.format", defaultValue: "logfmt", reloadable: true),
        .init(path: "probes.proc_root", defaultValue: "/proc", reloadable: false),
        .init(path: "probes.sys_root", defaultValue: "/sys", reloadable: false),
        .init(path: "probes.rootfs", defaultValue: "/", reloadable: false),
        .init(path: "probes.collectors", defaultValue: "all", reloadable: false),
        .init(path: "probes.disks.whole_disks_only", defaultValue: "true", reloadable: false),
        .init(path: "probes.disks.include", defaultValue: "[]", reloadable: false),
        .init(path: "probes.disks.exclude", defaultValue: "loop*, ram*, zram*, fd*, sr*, nbd*, dm-*, md*", reloadable: false),
        .init(path: "probes.interfaces.include", defaultValue: "[]", reloadable: false),
        .init(path: "probes.interfaces.exclude", defaultValue: "lo", reloadable: false),
        .init(path: "probes.filesystems.exclude_types", defaultValue: "pseudo, memory, overlay and network types", reloadable: false),
        .init(path: "probes.filesystems.include_mount_points", defaultValue: "[]", reloadable: false),
        .init(path: "probes.filesystems.exclude_mount_points", defaultValue: "[]", reloadable: false),
    ]

    /// Applies `HOSTMETER_…` variables to the parsed YAML: each value is read as YAML (so `30` is a
    /// number, `[a, b]` a list) and replaces the key's value in the file. A `HOSTMETER_` variable
    /// that names no key is refused, so a typo does not silently do nothing.
    static func applyEnvironment(
        _ environment: [String: String], to root: Node?, file: String
    ) throws(ConfigurationError) -> (root: Node?, overridden: [String: String]) {
        let byName = Dictionary(uniqueKeysWithValues: keys.map { ($0.environmentName, $0) })
        var root = root ?? Node.mapping(Node.Mapping([]))
        var overridden: [String: String] = [:]
        for (name, text) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("HOSTMETER_") {
            guard let key = byName[name] else {
                throw ConfigurationError(
                    file: "environment", line: nil, key: name,
                    message: "no configuration key is set by this variable (e.g. HOSTMETER_SINK_URL sets sink.url)")
            }
            let value: Node
            try YAMLGuard.check(text) {
                ConfigurationError(file: "environment", line: nil, key: key.path, message: "\(name): \($0)")
            }
            do {
                value = try Yams.compose(yaml: text) ?? Node("", Tag(.null))
            } catch {
                throw ConfigurationError(file: "environment", line: nil, key: key.path, message: "\(name) is not valid YAML: \(error)")
            }
            guard let updated = setting(value, at: key.path.split(separator: ".").map(String.init), in: root) else {
                throw ConfigurationError(
                    file: file, line: nil, key: key.path, message: "cannot apply \(name): a parent of this key is not a mapping")
            }
            root = updated
            overridden[key.path] = name
        }
        return (root, overridden)
    }

    private static func setting(_ value: Node, at path: [String], in node: Node) -> Node? {
        guard let first = path.first else { return value }
        guard case .mapping(var mapping) = node else {
            if node.null != nil { return setting(value, at: path, in: .mapping(Node.Mapping([]))) }
            return nil
        }
        let child = mapping[first] ?? Node.mapping(Node.Mapping([]))
        guard let updated = setting(value, at: Array(path.dropFirst()), in: child) else { return nil }
        mapping[first] = updated
        return .mapping(mapping)
    }
}
