import Foundation
public import Logging
import Metering
import Outbox
import Probes
public import ServiceLifecycle
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
            encoder: UsageEventEncoder(version: configuration.schemaVersion))
        let sampler = SamplerService(
            sampler: HostSampler(configuration: configuration.probes), recorder: recorder,
            sampleSeconds: configuration.effectiveSampleSeconds, logger: logger)
        return ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: sampler)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
    }
}
