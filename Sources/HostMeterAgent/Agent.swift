public import AgentAPI
import EventThreads
import Foundation
import GPU
public import Logging
import Metering
import Outbox
import Probes
public import ServiceLifecycle
public import Shipping
import UsageModel
import InputGuards
public import RuntimeState

/// A built agent: its service group, and handles tests and the run command use.
public struct AgentRuntime: Sendable {
    public let serviceGroup: ServiceGroup
    /// The API's port once it listens (useful with `api.listen` port 0).
    public let apiPort: APIServer.BoundPort
    public let state: AgentState
    public let thresholds: ThresholdRuleBook
    public let reloader: ConfigurationReloader
    /// Held while the agent runs.
    public let lock: StateDirectoryLock
}

/// The composition root: builds exactly what `hostmeter run` runs, so tests can run the same thing.
public enum Agent {
    /// Opens the state directory and database and builds the service group: the API, the shipper
    /// and the sampler. Shutdown runs in reverse: the sampler stops first, the shipper drains, and
    /// the API answers until the end.
    ///
    /// `configurationPath` is the file a SIGHUP reloads; `logSettings` the log level and format a
    /// reload changes; `notifier` talks to systemd.
    public static func build(
        configuration: AgentConfiguration, logger: Logger, configurationPath: String? = nil,
        logSettings: LogSettings? = nil, notifier: SystemdNotifier = SystemdNotifier(environment: [:])
    ) throws -> AgentRuntime {
        // A tokens file that cannot be used stops the start before anything is created.
        let tokens = try loadTokens(configuration)
        try StateDirectory.create(configuration.stateDirectory)
        let lock = try StateDirectoryLock(directory: configuration.stateDirectory)
        let identity = try loadIdentity(configuration, logger: logger)
        let database = try AgentDatabase.open(path: configuration.databasePath)
        let recorder = try MeteringRecorder(
            database: database,
            configuration: MeterConfiguration(
                hostID: configuration.hostID, intervalSeconds: Int64(configuration.intervalSeconds)),
            identity: InstanceIdentity(
                instanceID: configuration.hostInstanceID, userID: configuration.host.userID,
                orgID: configuration.host.orgID),
            encoder: UsageEventEncoder(version: configuration.schemaVersion), maxBytes: configuration.outbox.maxBytes,
            meterHost: configuration.host.enabled,
            commitments: CommitmentSettings(
                identity: identity, maxEvents: configuration.commitments.maxEvents,
                maxSeconds: Int64(configuration.commitments.maxSeconds)))
        let registry = try InstanceRegistry(
            database: database, reserved: [configuration.hostInstanceID], limit: configuration.maxInstances)
        let instances = InstanceSampling(
            registry: registry,
            directory: InstanceDirectory(path: configuration.instancesDirectory, maxManifests: configuration.maxInstances),
            probe: makeInstanceProbe(configuration, logger: logger), logger: logger)
        let state = AgentState(
            AgentSnapshot(
                hostID: configuration.hostID, intervalSeconds: configuration.intervalSeconds,
                sampleSeconds: configuration.effectiveSampleSeconds, outboxMaxBytes: configuration.outbox.maxBytes,
                startedAt: Date().timeIntervalSince1970))
        let metrics = AgentMetrics()
        logSettings?.observeDroppedLines { metrics.recordLogLinesDropped($0) }
        let shipperStatus = ShipperStatus()
        let thresholds = try ThresholdRuleBook(configuration: configuration.thresholds, database: database)
        let gpus = makeGPUSampler(configuration, logger: logger)
        var alertmanager: AlertmanagerNotifier?
        if let url = configuration.alerting.alertmanagerURL {
            // Alerts still firing when the agent stopped are sent again, so Alertmanager keeps them.
            let active = ThresholdEvaluator.firingEvents(
                states: recorder.thresholdStates, hostID: configuration.hostID,
                timestamp: Int64(Date().timeIntervalSince1970))
            alertmanager = AlertmanagerNotifier(
                settings: AlertmanagerSettings(
                    url: url, intervalSeconds: Double(configuration.intervalSeconds),
                    retry: RetryPolicy(baseSeconds: configuration.retry.baseSeconds, capSeconds: configuration.retry.capSeconds),
                    failureThreshold: configuration.circuitBreaker.failureThreshold,
                    openSeconds: configuration.circuitBreaker.openSeconds,
                    generatorURL: "http://\(configuration.api.listen)/thresholds"),
                logger: logger, active: active)
            // Threshold events reach it from the outbox rows each metering commit stores.
            alertmanager?.follow(database)
        }
        // The sampler has a thread of its own, and sleeps on its timer: no API load can hold up a
        // sample, and a sample costs one wake-up (`EventThread`).
        let samplerExecutor = EventThread(name: "hm-sampler")
        // The shipper too: with a file or stdout sink an idle agent then touches no shared pool.
        let shipperThread = EventThread(name: "hm-shipper")
        let sampler = SamplerService(
            reader: MachineReader(
                host: HostSampler(configuration: configuration.probes), gpus: gpus, instances: instances,
                instanceSampleSeconds: configuration.effectiveInstanceSampleSeconds),
            recorder: recorder, publisher: SnapshotPublisher(state: state, metrics: metrics), thresholds: thresholds,
            sampleSeconds: configuration.effectiveSampleSeconds, logger: logger,
            sleep: { try await samplerExecutor.sleep(for: $0) }, interrupt: { samplerExecutor.unpark() })
        let shipper = ShipperService(
            database: database, sink: try makeSink(configuration),
            settings: ShipperSettings(
                batchMaxEvents: configuration.sink.batchMaxEvents,
                retry: RetryPolicy(baseSeconds: configuration.retry.baseSeconds, capSeconds: configuration.retry.capSeconds),
                failureThreshold: configuration.circuitBreaker.failureThreshold,
                openSeconds: configuration.circuitBreaker.openSeconds,
                maxEventsPerSecond: configuration.sink.maxEventsPerSecond > 0 ? Double(configuration.sink.maxEventsPerSecond) : nil,
                holdSeconds: FleetPacing.offset(
                    hostID: configuration.hostID,
                    spreadSeconds: Double(min(configuration.sink.spreadSeconds, configuration.intervalSeconds)))),
            logger: logger, status: shipperStatus, onAttempt: { metrics.recordShipAttempt($0) },
            onDeadLettered: { metrics.recordDeadLettered($0) }, thread: shipperThread)
        let tls = try loadAPITLS(configuration, configurationPath: configurationPath)
        let api = try APIServer(
            listen: configuration.api.listen,
            dependencies: APIDependencies(
                status: AgentStatus(
                    state: state, shipper: shipperStatus, alertmanager: alertmanager, metrics: metrics),
                tokens: tokens, thresholds: thresholds, instances: registry,
                protectHealthAndMetrics: configuration.api.authHealthAndMetrics,
                identity: identity.publicIdentity,
                logger: logger),
            limits: configuration.api.limits, tls: tls)
        if !tokens.isEnabled, !configuration.api.listensOnLoopbackOnly {
            // Only with api.allow_remote_without_tokens: the configuration refuses it otherwise.
            logger.warning(
                "the API listens beyond loopback without tokens: anyone who reaches it may read every user's usage (changes stay refused)",
                metadata: ["api.listen": "\(configuration.api.listen)"])
        }
        if tls == nil, !api.isLoopback {
            logger.warning(
                "the API listens beyond loopback without TLS (api.tls): tokens and usage cross the network in clear",
                metadata: ["api.listen": "\(configuration.api.listen)"])
        }
        if let tls, tls.certificateNotAfter < Date().timeIntervalSince1970 {
            logger.warning(
                "the API's TLS certificate has expired: clients will refuse it",
                metadata: ["api.tls.certificate_file": "\(configuration.api.tls.certificateFile ?? "")",
                           "api.tls.not_after": "\(Date(timeIntervalSince1970: tls.certificateNotAfter))"])
        }
        let reloader = ConfigurationReloader(
            path: configurationPath, configuration: configuration, shipper: shipper, thresholds: thresholds,
            logSettings: logSettings, logger: logger)
        let supervisor = SupervisorService(
            notifier: notifier, apiPort: api.boundPort, state: state, reloader: reloader, logger: logger)
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: api), .init(service: ServiceOnExecutor(base: shipper, executor: shipperThread))]
                + (alertmanager.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                + [.init(service: ServiceOnExecutor(base: sampler, executor: samplerExecutor)),
                   .init(service: supervisor)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // Past this the services still running are cancelled: a consumer that hangs a drain cannot
        // hold the stop until systemd kills the agent (TimeoutStopSec, 90 s by default). Nothing is
        // lost by it: what was not acknowledged stays in the outbox.
        groupConfiguration.maximumGracefulShutdownDuration = Self.maximumGracefulShutdownDuration
        let group = ServiceGroup(configuration: groupConfiguration)
        return AgentRuntime(
            serviceGroup: group, apiPort: api.boundPort, state: state, thresholds: thresholds, reloader: reloader,
            lock: lock)
    }

    /// The per-instance probe for the cgroup hierarchies this host mounts (v2, v1 or both, found in
    /// the mount table, not configured). Without a mount table, instances with a cgroup are shown
    /// as not running, with the reason logged here once.
    static func makeInstanceProbe(_ configuration: AgentConfiguration, logger: Logger) -> InstanceProbe? {
        let probes = configuration.probes
        do {
            let probe = try InstanceProbe.detect(procRoot: probes.procRoot, sysRoot: probes.sysRoot, rootfs: probes.rootfs)
            logger.info(
                "cgroup layout detected",
                metadata: ["cgroup.layout": "\(probe.cgroups.layout.kind.rawValue)",
                           "cgroup.unified": "\(probe.cgroups.layout.unified ?? "none")"])
            return probe
        } catch {
            logger.error("cannot read the mount table: instances with a cgroup are not metered", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// NVIDIA GPUs through libnvidia-ml when it is present; nil (logged once) when it is not.
    static func makeGPUSampler(_ configuration: AgentConfiguration, logger: Logger) -> GPUSampler? {
        guard configuration.gpu.enabled else { return nil }
        switch NVMLLibrary.load(path: configuration.gpu.nvmlLibrary) {
        case .loaded(let library):
            logger.info("NVML loaded: metering NVIDIA GPUs", metadata: ["nvml.library": "\(library.path)"])
            return GPUSampler(library: library)
        case .noNVML(let reason):
            logger.info("no NVML: GPUs are not metered", metadata: ["nvml.library": "\(configuration.gpu.nvmlLibrary)",
                                                                    "reason": "\(reason)"])
            return nil
        case .failed(let error):
            logger.error("NVML cannot be used: GPUs are not metered", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// The identity key of `identity.key_file`, made at the first start. A key that cannot be read
    /// or made stops the start (exit 2): signing with another key would break every later
    /// signature a billing team checks.
    static func loadIdentity(_ configuration: AgentConfiguration, logger: Logger) throws(ConfigurationError) -> SigningIdentity {
        let path = configuration.identityKeyPath
        do {
            let (identity, created) = try IdentityKeyFile.loadOrCreate(path: path)
            logger.log(
                level: created ? .notice : .info, created ? "made a new identity key" : "identity key",
                metadata: ["identity.key_file": "\(path)", "identity.key_id": "\(identity.publicIdentity.keyID)"])
            return identity
        } catch {
            throw ConfigurationError(file: path, line: nil, key: "identity.key_file", message: error.reason)
        }
    }

    /// The API's tokens from `api.tokens_file`: none when it is not set (reads open on loopback,
    /// changes refused); a file that holds no valid token is a configuration error.
    public static func loadTokens(_ configuration: AgentConfiguration) throws(ConfigurationError) -> TokenStore {
        guard let path = configuration.api.tokensFile else { return .open }
        // Read with a bound (a tokens file is a few kilobytes), then parsed as TokenStore.load would.
        let bytes: [UInt8]
        do {
            bytes = try FileReader.read(path, limit: YAMLGuard.defaultMaxBytes)
        } catch {
            throw ConfigurationError(
                file: path, line: nil, key: "api.tokens_file", message: "cannot read: \(AgentConfiguration.readFailure(error))")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigurationError(
                file: path, line: nil, key: "api.tokens_file", message: "cannot read: the file is not UTF-8 text")
        }
        do {
            return try TokenStore.parse(text, file: path)
        } catch {
            throw ConfigurationError(file: path, line: nil, key: "api.tokens_file", message: error.message)
        }
    }

    /// The API's TLS from `api.tls`, its files read and checked (nil: plain HTTP). `hostmeter run`
    /// and `hostmeter config check` both call it, so a file that cannot serve stops either with the
    /// key and the file named (the configuration file `configurationPath` when a key is missing).
    public static func loadAPITLS(
        _ configuration: AgentConfiguration, configurationPath: String? = nil
    ) throws(ConfigurationError) -> APITLS? {
        do {
            return try APITLS.load(configuration.api.tls)
        } catch {
            throw ConfigurationError(
                file: error.file ?? configurationPath ?? "configuration", line: nil, key: error.key, message: error.message)
        }
    }

    /// How long a graceful stop may take before the services still running are cancelled.
    public static let maximumGracefulShutdownDuration: Duration = .seconds(60)

    /// librdkafka's verdict on a `kafka` sink's properties, without making a producer (nothing
    /// connects); other sinks have nothing to check here.
    public static func checkSinkProperties(
        _ configuration: AgentConfiguration, configurationPath: String? = nil
    ) throws(ConfigurationError) {
        guard configuration.sink.type == .kafka else { return }
        let settings = try kafkaSettings(configuration)
        do {
            try settings.check()
        } catch {
            throw kafkaError(error, configurationPath: configurationPath)
        }
    }

    /// The kafka sink's settings, with `sasl.password` read from `sink.kafka.sasl_password_file`.
    private static func kafkaSettings(_ configuration: AgentConfiguration) throws(ConfigurationError) -> KafkaSink.Settings {
        let sink = configuration.sink
        var properties = sink.kafka.properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if let password = try readSecret(sink.kafka.saslPasswordFile, key: "sink.kafka.sasl_password_file") {
            properties.append(("sasl.password", password))
        }
        return KafkaSink.Settings(
            brokers: sink.kafka.brokers ?? "", topic: sink.kafka.topic, hostID: configuration.hostID, properties: properties,
            caFile: sink.caFile, deliveryTimeoutSeconds: sink.timeoutSeconds)
    }

    private static func kafkaError(_ error: KafkaSink.ConfigurationRefused, configurationPath: String?) -> ConfigurationError {
        ConfigurationError(
            file: configurationPath ?? "configuration", line: nil,
            key: error.property.map { "sink.kafka.properties.\($0)" } ?? "sink.kafka", message: error.message)
    }

    /// The content of the secret file `path` names, surrounding whitespace trimmed; nil without one.
    private static func readSecret(_ path: String?, key: String) throws(ConfigurationError) -> String? {
        guard let path else { return nil }
        do {
            return try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw ConfigurationError(file: path, line: nil, key: key, message: "cannot read: \(error.localizedDescription)")
        }
    }

    /// The sink `sink.type` names, with its secrets read from their files.
    public static func makeSink(_ configuration: AgentConfiguration) throws -> any Sink {
        let sink = configuration.sink
        switch sink.type {
        case .file:
            return FileSink(path: configuration.sinkFilePath)
        case .stdout:
            return StdoutSink()
        case .nats:
            return NATSSink(
                settings: NATSSink.Settings(
                    servers: sink.url ?? "", subject: sink.nats.subject, hostID: configuration.hostID, stream: sink.nats.stream,
                    token: try readSecret(sink.tokenFile, key: "sink.token_file"), user: sink.nats.user,
                    password: try readSecret(sink.nats.passwordFile, key: "sink.nats.password_file"),
                    credentialsFile: sink.nats.credentialsFile, nkey: sink.nats.nkey, nkeySeedFile: sink.nats.nkeySeedFile,
                    caFile: sink.caFile, connectTimeoutSeconds: sink.connectTimeoutSeconds,
                    ackTimeoutSeconds: sink.timeoutSeconds, maxInFlight: sink.nats.maxInFlight))
        case .kafka:
            let settings = try kafkaSettings(configuration)
            do {
                return try KafkaSink(settings: settings)
            } catch {
                throw kafkaError(error, configurationPath: nil)
            }
        case .http, .cloudevents:
            let token = try readSecret(sink.tokenFile, key: "sink.token_file")
            return try HTTPSink(
                settings: HTTPSink.Settings(
                    url: sink.url ?? "", format: sink.type == .http ? .json : .cloudEvents, hostID: configuration.hostID,
                    token: token, headers: sink.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                    caFile: sink.caFile, connectTimeoutSeconds: sink.connectTimeoutSeconds,
                    requestTimeoutSeconds: sink.timeoutSeconds, subject: sink.subject, compression: sink.compression))
        }
    }
}
