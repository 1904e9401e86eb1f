import Foundation
public import Logging
import Metering
import Outbox
import Probes
public import ServiceLifecycle
public import Shipping
import UsageModel

/// The composition root: builds exactly what `hostmeter run` runs, so tests can run the same thing.
public enum Agent {
    /// Opens the state directory and database and builds the service group.
    public static func buildServiceGroup(configuration: AgentConfiguration, logger: Logger) throws -> ServiceGroup {
        try FileManager.default.createDirectory(
            atPath: configuration.stateDirectory, withIntermediateDirectories: true)
        let database = try AgentDatabase.open(path: configuration.databasePath)
        let recorder = try MeteringRecorder(
            database: database,
            configuration: MeterConfiguration(
                hostID: configuration.hostID, intervalSeconds: Int64(configuration.intervalSeconds)),
            identity: InstanceIdentity(
                instanceID: configuration.hostInstanceID, userID: configuration.host.userID,
                orgID: configuration.host.orgID),
            encoder: UsageEventEncoder(version: configuration.schemaVersion), maxBytes: configuration.outbox.maxBytes)
        let sampler = SamplerService(
            sampler: HostSampler(configuration: configuration.probes), recorder: recorder,
            sampleSeconds: configuration.effectiveSampleSeconds, logger: logger)
        let shipper = ShipperService(
            database: database, sink: try makeSink(configuration),
            settings: ShipperSettings(
                batchMaxEvents: configuration.sink.batchMaxEvents,
                retry: RetryPolicy(baseSeconds: configuration.retry.baseSeconds, capSeconds: configuration.retry.capSeconds),
                failureThreshold: configuration.circuitBreaker.failureThreshold,
                openSeconds: configuration.circuitBreaker.openSeconds),
            logger: logger)
        // Shutdown runs in reverse: the sampler stops first, then the shipper drains.
        return ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: shipper), .init(service: sampler)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
    }

    /// The sink `sink.type` names, with its token read from `sink.token_file`.
    public static func makeSink(_ configuration: AgentConfiguration) throws -> any EventSink {
        let sink = configuration.sink
        switch sink.type {
        case .file:
            return FileSink(path: configuration.sinkFilePath)
        case .stdout:
            return StdoutSink()
        case .http, .cloudevents:
            var token: String?
            if let tokenFile = sink.tokenFile {
                do {
                    token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                } catch {
                    throw ConfigurationError(
                        file: tokenFile, line: nil, key: "sink.token_file", message: "cannot read: \(error.localizedDescription)")
                }
            }
            return try HTTPSink(
                settings: HTTPSink.Settings(
                    url: sink.url ?? "", format: sink.type == .http ? .json : .cloudEvents, hostID: configuration.hostID,
                    token: token, headers: sink.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                    caFile: sink.caFile, connectTimeoutSeconds: sink.connectTimeoutSeconds,
                    requestTimeoutSeconds: sink.timeoutSeconds))
        }
    }
}
