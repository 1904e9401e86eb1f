import AgentAPI
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
    public var identity = Identity()
    public var commitments = Commitments()
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

    /// Each section is read by its own type (AgentConfiguration+API.swift and the like), in the
    /// order the sections' errors are reported.
    init(_ root: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try root.section()
        func node(_ name: String) -> ConfigNode { keys[name] ?? root.child(name) }

        hostID = try Self.identifier(node("host_id"), default: hostID)
        intervalSeconds = try node("interval_seconds").int(default: intervalSeconds)
        if let sample = keys["sample_seconds"], !sample.isNull {
            let value = try sample.int(default: 5)
            guard value <= intervalSeconds else {
                throw sample.error("must not be longer than interval_seconds (\(intervalSeconds))")
            }
            sampleSeconds = value
        }
        if let instanceSample = keys["instance_sample_seconds"], !instanceSample.isNull {
            let value = try instanceSample.int(default: 15)
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
        maxInstances = try node("max_instances").int(default: maxInstances)

        api = try API(node("api"))
        host = try Host(node("host"), hostID: hostID)
        sink = try Sink(node("sink"))
        retry = try Retry(node("retry"))
        circuitBreaker = try CircuitBreaker(node("circuit_breaker"))
        outbox = try OutboxSettings(node("outbox"))
        thresholds = try Self.thresholds(node("thresholds"))
        alerting = try Alerting(node("alerting"))
        gpu = try GPUSettings(node("gpu"))
        log = try Log(node("log"))
        identity = try Identity(node("identity"))
        commitments = try Commitments(node("commitments"))
        probes = try Self.probes(node("probes"))
    }

    /// Ids go into event ids and labels: non-empty, at most 256 bytes, no control characters.
    static func identifier(_ node: ConfigNode, default value: String) throws(ConfigurationError) -> String {
        let text = try node.string(default: value)
        guard !text.isEmpty, text.utf8.count <= 256 else { throw node.error("must be 1 to 256 characters") }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw node.error("must not contain control characters")
        }
        return text
    }
}
