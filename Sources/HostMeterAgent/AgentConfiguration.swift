public import AgentAPI
import Foundation
public import Metering
public import Probes
public import UsageModel
import Yams
import InputGuards

/// The agent's configuration: the YAML file of the configuration contract, validated.
///
/// Defaults are those of the contract; every key is optional. An unknown key or a bad value is a
/// `ConfigurationError` naming the key and line.
public struct AgentConfiguration: Sendable, Equatable {
    public enum SinkType: String, Sendable, CaseIterable { case http, cloudevents, file, stdout }
    public enum LogLevel: String, Sendable, CaseIterable { case trace, debug, info, notice, warning, error, critical }
    public enum LogFormat: String, Sendable, CaseIterable { case logfmt, json }

    public struct API: Sendable, Equatable {
        public var listen = "127.0.0.1:9780"
        public var tokensFile: String?
        /// With tokens configured, whether /health and /metrics need an admin or metrics token
        /// (they carry every user's figures).
        public var authHealthAndMetrics = true
        /// Whether the API may listen beyond loopback with no tokens file: anyone who reaches it
        /// could then read every user's usage. Refused unless this says so.
        public var allowRemoteWithoutTokens = false

        /// Whether `listen` names a loopback host only (127.0.0.0/8, ::1 or localhost).
        public var listensOnLoopbackOnly: Bool {
            guard let host = try? ListenAddress.parse(listen).host else { return false }
            return ListenAddress.isLoopback(host)
        }

        /// `api.max_connections_per_peer`: connections one IPv4 address or IPv6 /64 may hold.
        public var maxConnectionsPerPeer = APILimits.defaultMaxConnectionsPerPeer
        /// `api.request_timeout_seconds`: how long a client may take to send a whole request.
        public var requestTimeoutSeconds = 10.0
        /// `api.tls`: certificate, key and client CA files; none set: plain HTTP. The files are
        /// read and checked by `Agent.loadAPITLS`, not here.
        public var tls = APITLSFiles()

        /// The connection limits these settings give the server.
        public var limits: APILimits {
            APILimits(maxConnectionsPerPeer: maxConnectionsPerPeer, requestTimeout: .milliseconds(Int64((requestTimeoutSeconds * 1000).rounded())))
        }
    }

    public struct Host: Sendable, Equatable {
        /// Whether the host itself is metered as one instance (host mode), beside any VMs.
        public var enabled = true
        /// nil: the host_id.
        public var instanceID: String?
        public var userID = "operator"
        public var orgID: String?
    }

    public struct Sink: Sendable, Equatable {
        public var type: SinkType = .file
        public var url: String?
        /// nil: `<state_dir>/events.jsonl`.
        public var path: String?
        public var tokenFile: String?
        public var batchMaxEvents = 500
        public var timeoutSeconds = 30.0
        public var connectTimeoutSeconds = 10.0
        /// A PEM file of CA certificates to trust for https instead of the system's.
        public var caFile: String?
        /// Extra request headers.
        public var headers: [String: String] = [:]
    }

    public struct Retry: Sendable, Equatable {
        public var baseSeconds = 1.0
        public var capSeconds = 300.0
    }

    public struct CircuitBreaker: Sendable, Equatable {
        public var failureThreshold = 5
        public var openSeconds = 30.0
    }

    public struct OutboxSettings: Sendable, Equatable {
        public var maxBytes = 1_073_741_824
    }

    public struct Alerting: Sendable, Equatable {
        public var alertmanagerURL: String?
    }

    public struct GPUSettings: Sendable, Equatable {
        /// Meter NVIDIA GPUs when libnvidia-ml is present (absent: nothing happens).
        public var enabled = true
        public var nvmlLibrary = "libnvidia-ml.so.1"
    }

    public struct Log: Sendable, Equatable {
        public var level: LogLevel = .info
        public var format: LogFormat = .logfmt
    }

    public var hostID: String
    public var intervalSeconds = 30
    /// How often the host is sampled within a period: memory is averaged over these samples.
    /// Default: the interval, but at most 5 s.
    public var sampleSeconds: Int?
    /// `instance_sample_seconds`: how often instances are probed (nil: the default below).
    public var instanceSampleSeconds: Int?
    public var stateDirectory = "/var/lib/hostmeter"
    /// `instances_dir`: one manifest file per metered instance (VM).
    public var instancesDirectory = "/etc/hostmeter/instances.d"
    /// `max_instances`: the most instances metered besides the host, from files and the API.
    public var maxInstances = AgentConfiguration.defaultMaxInstances
    public var schemaVersion = UsageSchemaVersion.current
    public var api = API()
    public var host = Host()
    public var sink = Sink()
    public var retry = Retry()
    public var circuitBreaker = CircuitBreaker()
    public var outbox = OutboxSettings()
    public var alerting = Alerting()
    public var log = Log()
    public var gpu = GPUSettings()
    public var probes = HostSamplerConfiguration()
    /// `thresholds:`: the configuration's rules (an API-set list wins while one is stored).
    public var thresholds: [ThresholdRule] = []

    public init(hostID: String = AgentConfiguration.defaultHostID) {
        self.hostID = hostID
    }

    /// The sampling cadence actually used.
    public var effectiveSampleSeconds: Int { sampleSeconds ?? min(intervalSeconds, 5) }
    /// How often instances are probed: by default the largest multiple of the sample cadence
    /// that is at most min(interval_seconds, 15) — twice per 30 s period. Probing 1,000 VMs costs
    /// ~40 ms of CPU, so probing them every 5 s would take more than 1 % of a core.
    public var effectiveInstanceSampleSeconds: Int {
        if let instanceSampleSeconds { return instanceSampleSeconds }
        let sample = effectiveSampleSeconds
        return max(sample, min(intervalSeconds, 15) / sample * sample)
    }
    /// The host instance's id.
    public var hostInstanceID: String { host.instanceID ?? hostID }
    /// The database file.
    public var databasePath: String { (stateDirectory as NSString).appendingPathComponent("hostmeter.sqlite") }
    /// The file sink's file.
    public var sinkFilePath: String { sink.path ?? (stateDirectory as NSString).appendingPathComponent("events.jsonl") }

    public static var defaultHostID: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }

    public static let defaultPath = "/etc/hostmeter/hostmeter.yaml"
    /// `max_instances`' default, `InstanceRegistry.defaultLimit` (spelled out here because the fuzz
    /// build of this file has no InstanceRegistry).
    public static let defaultMaxInstances = 4096
    /// The largest `max_instances`: each instance costs about 9 kB of memory and 33 µs per probe.
    public static let maxInstancesLimit = 65_536
    /// The largest configuration file read; a full one is a few kilobytes.
    public static let maxFileBytes = YAMLGuard.defaultMaxBytes

    // MARK: Loading

    /// Reads and validates the file at `path`, with `HOSTMETER_…` variables of `environment`
    /// overriding its keys (nil: the process's environment).
    public static func load(
        path: String, environment: [String: String]? = nil
    ) throws(ConfigurationError) -> AgentConfiguration {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let bytes: [UInt8]
        do {
            bytes = try FileReader.read(path, limit: maxFileBytes)
        } catch {
            throw ConfigurationError(file: path, line: nil, key: "", message: "cannot read: \(readFailure(error))")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigurationError(file: path, line: nil, key: "", message: "cannot read: the file is not UTF-8 text")
        }
        return try parse(text, file: path, environment: environment)
    }

    /// Why a file could not be read, without repeating its path (the error names it).
    static func readFailure(_ error: ProbeError) -> String {
        switch error {
        case .unreadable(_, let code): String(cString: strerror(code))
        case .tooLarge(_, let limit): "it is larger than the \(limit) bytes allowed"
        default: "\(error)"
        }
    }

    /// Validates YAML text; `file` names it in errors. `environment`'s `HOSTMETER_…` variables
    /// override keys of the text (see `keys`).
    public static func parse(
        _ text: String, file: String = "<config>", environment: [String: String] = [:]
    ) throws(ConfigurationError) -> AgentConfiguration {
        // Anchors are refused before Yams composes the text: an alias used as a mapping key
        // keeps Yams' composer busy for minutes (YAMLGuard).
        try YAMLGuard.check(text, maxBytes: maxFileBytes) {
            ConfigurationError(file: file, line: $0.line, key: "", message: $0.message)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigurationError(file: file, line: Self.line(of: error), key: "", message: "not valid YAML: \(error)")
        } catch {
            throw ConfigurationError(file: file, line: nil, key: "", message: "not valid YAML: \(error)")
        }
        let (merged, overridden) = try applyEnvironment(environment, to: root, file: file)
        do {
            return try AgentConfiguration(ConfigNode(node: merged, key: "", file: file))
        } catch {
            // A bad value that came from the environment is reported as the variable's.
            if let name = overridden.first(where: { error.key == $0.key || error.key.hasPrefix($0.key + ".")
                || error.key.hasPrefix($0.key + "[") })?.value
            {
                throw ConfigurationError(file: "environment \(name)", line: nil, key: error.key, message: error.message)
            }
            throw error
        }
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        default: nil
        }
    }

    init(_ root: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try root.mapping(allowed: [
            "host_id", "interval_seconds", "sample_seconds", "state_dir", "schema_version", "api", "host", "sink",
            "retry", "circuit_breaker", "outbox", "thresholds", "alerting", "log", "probes", "gpu", "instances_dir",
            "instance_sample_seconds", "max_instances",
        ])
        func node(_ name: String) -> ConfigNode { keys[name] ?? root.child(name) }

        hostID = try Self.identifier(node("host_id"), default: hostID)
        intervalSeconds = try node("interval_seconds").int(default: intervalSeconds, in: 1...3600)
        if let sample = keys["sample_seconds"], !sample.isNull {
            let value = try sample.int(default: 5, in: 1...3600)
            guard value <= intervalSeconds else {
                throw sample.error("must not be longer than interval_seconds (\(intervalSeconds))")
            }
            sampleSeconds = value
        }
        if let instanceSample = keys["instance_sample_seconds"], !instanceSample.isNull {
            let value = try instanceSample.int(default: 15, in: 1...3600)
            guard value <= intervalSeconds else {
                throw instanceSample.error("must not be longer than interval_seconds (\(intervalSeconds))")
            }
            guard value % effectiveSampleSeconds == 0 else {
                throw instanceSample.error("must be a multiple of sample_seconds (\(effectiveSampleSeconds))")
            }
            instanceSampleSeconds = value
        }
        stateDirectory = try node("state_dir").string(default: stateDirectory)
        guard !stateDirectory.isEmpty else { throw node("state_dir").error("must not be empty") }
        schemaVersion = try node("schema_version").choice(default: schemaVersion)
        instancesDirectory = try node("instances_dir").string(default: instancesDirectory)
        guard !instancesDirectory.isEmpty else { throw node("instances_dir").error("must not be empty") }
        maxInstances = try node("max_instances").int(default: maxInstances, in: 1...Self.maxInstancesLimit)

        let apiKeys = try node("api").mapping(
            allowed: ["listen", "tokens_file", "auth_health_and_metrics", "allow_remote_without_tokens",
                      "max_connections_per_peer", "request_timeout_seconds", "tls"])
        api.listen = try apiKeys["listen"]?.string(default: api.listen) ?? api.listen
        do {
            _ = try ListenAddress.parse(api.listen)
        } catch {
            throw (apiKeys["listen"] ?? node("api").child("listen")).error("\(error)")
        }
        api.tokensFile = try apiKeys["tokens_file"]?.optionalString()
        if let auth = apiKeys["auth_health_and_metrics"], !auth.isNull {
            guard let value = auth.node?.bool else { throw auth.error("expected true or false") }
            api.authHealthAndMetrics = value
        }
        if let allow = apiKeys["allow_remote_without_tokens"], !allow.isNull {
            guard let value = allow.node?.bool else { throw allow.error("expected true or false") }
            api.allowRemoteWithoutTokens = value
        }
        if api.tokensFile == nil, !api.allowRemoteWithoutTokens, !api.listensOnLoopbackOnly {
            throw (apiKeys["listen"] ?? node("api").child("listen")).error(
                "\(api.listen) is beyond loopback and api.tokens_file is not set: anyone who reaches it could read "
                    + "every user's usage; set api.tokens_file, or api.allow_remote_without_tokens: true to accept that")
        }
        api.maxConnectionsPerPeer = try apiKeys["max_connections_per_peer"]?.int(
            default: api.maxConnectionsPerPeer, in: 1...APILimits.defaultMaxConnections) ?? api.maxConnectionsPerPeer
        api.requestTimeoutSeconds = try apiKeys["request_timeout_seconds"]?.double(
            default: api.requestTimeoutSeconds, in: 0.1...600) ?? api.requestTimeoutSeconds
        let tlsKeys = try (apiKeys["tls"] ?? node("api").child("tls")).mapping(
            allowed: ["certificate_file", "key_file", "client_ca_file"])
        api.tls = APITLSFiles(
            certificateFile: try tlsKeys["certificate_file"]?.optionalString(),
            keyFile: try tlsKeys["key_file"]?.optionalString(),
            clientCAFile: try tlsKeys["client_ca_file"]?.optionalString())

        let hostKeys = try node("host").mapping(allowed: ["enabled", "instance_id", "user_id", "org_id"])
        if let enabled = hostKeys["enabled"], !enabled.isNull {
            guard let value = enabled.node?.bool else { throw enabled.error("expected true or false") }
            host.enabled = value
        }
        if let instance = hostKeys["instance_id"], !instance.isNull {
            host.instanceID = try Self.identifier(instance, default: hostID)
        }
        if let user = hostKeys["user_id"] { host.userID = try Self.identifier(user, default: host.userID) }
        if let org = hostKeys["org_id"], !org.isNull { host.orgID = try Self.identifier(org, default: "") }

        let sinkKeys = try node("sink").mapping(
            allowed: ["type", "url", "path", "token_file", "batch_max_events", "timeout_seconds",
                      "connect_timeout_seconds", "ca_file", "headers"])
        sink.type = try sinkKeys["type"]?.choice(default: sink.type) ?? sink.type
        sink.url = try sinkKeys["url"]?.optionalString()
        sink.path = try sinkKeys["path"]?.optionalString()
        sink.tokenFile = try sinkKeys["token_file"]?.optionalString()
        sink.batchMaxEvents = try sinkKeys["batch_max_events"]?.int(default: sink.batchMaxEvents, in: 1...100_000)
            ?? sink.batchMaxEvents
        sink.timeoutSeconds = try sinkKeys["timeout_seconds"]?.double(default: sink.timeoutSeconds, in: 0.1...3600)
            ?? sink.timeoutSeconds
        sink.connectTimeoutSeconds = try sinkKeys["connect_timeout_seconds"]?.double(
            default: sink.connectTimeoutSeconds, in: 0.1...600) ?? sink.connectTimeoutSeconds
        sink.caFile = try sinkKeys["ca_file"]?.optionalString()
        if let headers = sinkKeys["headers"] {
            for (name, value) in try headers.mapping(allowed: nil) {
                guard let text = try value.optionalString(), !name.isEmpty,
                    name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) })
                else { throw value.error("headers need a token name and a string value") }
                sink.headers[name] = text
            }
        }
        if sink.type == .http || sink.type == .cloudevents {
            guard let url = sink.url, let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? "") else {
                throw (sinkKeys["url"] ?? node("sink").child("url")).error(
                    "sink type \(sink.type.rawValue) needs an http:// or https:// url")
            }
        }

        let retryKeys = try node("retry").mapping(allowed: ["base_seconds", "cap_seconds"])
        retry.baseSeconds = try retryKeys["base_seconds"]?.double(default: retry.baseSeconds, in: 0.001...3600)
            ?? retry.baseSeconds
        retry.capSeconds = try retryKeys["cap_seconds"]?.double(default: retry.capSeconds, in: 0.001...86400)
            ?? retry.capSeconds
        guard retry.capSeconds >= retry.baseSeconds else {
            throw node("retry").child("cap_seconds").error("must not be below retry.base_seconds")
        }

        let breakerKeys = try node("circuit_breaker").mapping(allowed: ["failure_threshold", "open_seconds"])
        circuitBreaker.failureThreshold = try breakerKeys["failure_threshold"]?.int(
            default: circuitBreaker.failureThreshold, in: 1...1000) ?? circuitBreaker.failureThreshold
        circuitBreaker.openSeconds = try breakerKeys["open_seconds"]?.double(
            default: circuitBreaker.openSeconds, in: 0.01...86400) ?? circuitBreaker.openSeconds

        let outboxKeys = try node("outbox").mapping(allowed: ["max_bytes"])
        outbox.maxBytes = try outboxKeys["max_bytes"]?.int(default: outbox.maxBytes, in: 1_048_576...Int.max)
            ?? outbox.maxBytes

        thresholds = try Self.thresholds(node("thresholds"))

        let alertingKeys = try node("alerting").mapping(allowed: ["alertmanager_url"])
        alerting.alertmanagerURL = try alertingKeys["alertmanager_url"]?.optionalString()
        if let url = alerting.alertmanagerURL {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                throw (alertingKeys["alertmanager_url"] ?? node("alerting")).error("must be an http:// or https:// URL")
            }
        }

        let gpuKeys = try node("gpu").mapping(allowed: ["enabled", "nvml_library"])
        if let enabled = gpuKeys["enabled"], !enabled.isNull {
            guard let value = enabled.node?.bool else { throw enabled.error("expected true or false") }
            gpu.enabled = value
        }
        gpu.nvmlLibrary = try gpuKeys["nvml_library"]?.string(default: gpu.nvmlLibrary) ?? gpu.nvmlLibrary

        let logKeys = try node("log").mapping(allowed: ["level", "format"])
        log.level = try logKeys["level"]?.choice(default: log.level) ?? log.level
        log.format = try logKeys["format"]?.choice(default: log.format) ?? log.format

        probes = try Self.probes(node("probes"))
    }

    /// Rules decode through the type the API uses, so both refuse the same things; errors name the
    /// rule's place and field (`thresholds[2].clear`) and the line.
    private static func thresholds(_ node: ConfigNode) throws(ConfigurationError) -> [ThresholdRule] {
        var rules: [ThresholdRule] = []
        for item in try node.sequence() {
            guard let yaml = item.node else { throw item.error("expected a rule") }
            do {
                rules.append(try YAMLDecoder().decode(ThresholdRule.self, from: yaml))
            } catch {
                let ruleError = (error as? ThresholdRuleError)
                    ?? (error as? DecodingError).map(ThresholdRule.describe)
                    ?? ThresholdRuleError(field: "", message: "\(error)")
                let field = ruleError.field.split(separator: ".").first.map(String.init)
                let located = field.map { item.child($0) }.flatMap { $0.node == nil ? nil : $0 } ?? item
                throw ConfigurationError(
                    file: item.file, line: located.line, key: ruleError.within(item.key).field, message: ruleError.message)
            }
        }
        do {
            try ThresholdRule.validate(rules)
        } catch {
            throw ConfigurationError(file: node.file, line: node.line, key: error.within(node.key).field, message: error.message)
        }
        return rules
    }

    private static func probes(_ node: ConfigNode) throws(ConfigurationError) -> HostSamplerConfiguration {
        var probes = HostSamplerConfiguration()
        let keys = try node.mapping(
            allowed: ["proc_root", "sys_root", "rootfs", "collectors", "disks", "interfaces", "filesystems"])
        probes = HostSamplerConfiguration(
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
            let diskKeys = try disks.mapping(allowed: ["whole_disks_only", "include", "exclude"])
            if let whole = diskKeys["whole_disks_only"], !whole.isNull {
                guard let value = whole.node?.bool else { throw whole.error("expected true or false") }
                probes.disks.wholeDisksOnly = value
            }
            if let include = diskKeys["include"] { probes.disks.devices.include = try include.strings() }
            if let exclude = diskKeys["exclude"] { probes.disks.devices.exclude = try exclude.strings() }
        }
        if let interfaces = keys["interfaces"] {
            let interfaceKeys = try interfaces.mapping(allowed: ["include", "exclude"])
            if let include = interfaceKeys["include"] { probes.interfaces.include = try include.strings() }
            if let exclude = interfaceKeys["exclude"] { probes.interfaces.exclude = try exclude.strings() }
        }
        if let filesystems = keys["filesystems"] {
            let filesystemKeys = try filesystems.mapping(allowed: ["exclude_types", "include_mount_points", "exclude_mount_points"])
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

    /// Ids go into event ids and labels: non-empty, at most 256 bytes, no control characters.
    private static func identifier(_ node: ConfigNode, default value: String) throws(ConfigurationError) -> String {
        let text = try node.string(default: value)
        guard !text.isEmpty, text.utf8.count <= 256 else { throw node.error("must be 1 to 256 characters") }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw node.error("must not contain control characters")
        }
        return text
    }
}
