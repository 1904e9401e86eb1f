import ArgumentParser
import Foundation
import HostMeterAgent
import Metering
import Outbox
import Probes
import UsageModel

/// `hostmeter sample`: one host sample as JSON, or two with rates between them.
struct SampleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Read this host's counters once and print them as JSON.",
        discussion: """
            Collectors that fail are listed under "failures" and on stderr; the command exits 1 only \
            when no collector could read anything.
            """
    )

    @Flag(help: "Indent the JSON.")
    var pretty = false

    @Option(help: "Take a second sample this many seconds later and add rates between the two (0.01–3600).")
    var interval: Double?

    @Flag(help: "Meter this host over a few 1-second periods and print the UsageEvents they produce.")
    var events = false

    @Option(help: "With --events: how many periods to close (1–60).")
    var periods = 3

    @Option(help: "With --events: the host_id the events carry.")
    var hostID = AgentConfiguration.defaultHostID

    @Option(help: "With --events: the UsageEvent version to write (1.0, or 1.1 with each instance's hash chain).")
    var schemaVersion: String = UsageSchemaVersion.current.rawValue

    @Option(help: "The procfs root to read instead of /proc.")
    var procRoot = "/proc"

    @Option(help: "The sysfs root to read instead of /sys.")
    var sysRoot = "/sys"

    @Option(help: "The root under which mount points are stat'ed (the host's / seen from a container).")
    var rootfs = "/"

    func validate() throws {
        if let interval, !(0.01...3600).contains(interval) {
            throw ValidationError("--interval must be between 0.01 and 3600 seconds, got \(interval)")
        }
        if events, interval != nil { throw ValidationError("--events and --interval cannot be combined") }
        if !(1...60).contains(periods) { throw ValidationError("--periods must be between 1 and 60, got \(periods)") }
        if UsageSchemaVersion(rawValue: schemaVersion) == nil {
            throw ValidationError(
                "--schema-version must be one of \(UsageSchemaVersion.allCases.map(\.rawValue).joined(separator: ", ")), got \(schemaVersion)")
        }
    }

    func run() async throws {
        let sampler = HostSampler(
            configuration: HostSamplerConfiguration(procRoot: procRoot, sysRoot: sysRoot, rootfs: rootfs))
        if events {
            try await printEvents(sampler)
            return
        }
        var sample = sampler.sample()
        var rates: HostRates?
        if let interval {
            let first = sample
            try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            sample = sampler.sample()
            rates = HostRates(from: first, to: sample)
        }

        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(HostSampleReport(sample: sample, rates: rates))
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))

        for failure in sample.failures {
            FileHandle.standardError.write(Data("hostmeter: collector \(failure)\n".utf8))
        }
        if sample.succeeded.isEmpty {
            FileHandle.standardError.write(Data("hostmeter: no collector could read anything\n".utf8))
            throw ExitCode.failure
        }
    }
}

extension SampleCommand {
    /// Samples once a second, on the second, through the real metering engine and an in-memory
    /// outbox, until `periods` periods have closed; prints the events as a JSON array.
    func printEvents(_ sampler: HostSampler) async throws {
        let database = try AgentDatabase.inMemory()
        var recorder = try MeteringRecorder(
            database: database, configuration: MeterConfiguration(hostID: hostID, intervalSeconds: 1),
            identity: InstanceIdentity(instanceID: hostID, userID: "operator"),
            encoder: UsageEventEncoder(version: UsageSchemaVersion(rawValue: schemaVersion) ?? .current))
        var closed: [UsageEvent] = []
        // One sample to start from, then one per period; a few spare in case a sample is late.
        for _ in 0..<(periods + 3) where closed.count < periods {
            let sample = sampler.sample()
            guard let step = try recorder.record(sample) else {
                FileHandle.standardError.write(Data("hostmeter: no boot ID, cannot meter\n".utf8))
                throw ExitCode.failure
            }
            closed += step.events
            if closed.count < periods {
                try await Task.sleep(for: .nanoseconds(SamplerService.nanosToNextTick(sampleSeconds: 1)))
            }
        }
        // Exactly the bytes the outbox stores and ships (chained, for 1.1), in the order stored.
        let wire = try database.events().filter { $0.eventType == UsageEvent.eventType }.prefix(periods).map(\.payload)
        if pretty {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            FileHandle.standardOutput.write(try encoder.encode(try wire.map { try JSONDecoder().decode(UsageEvent.self, from: $0) }))
        } else {
            FileHandle.standardOutput.write(Data("[".utf8) + Data(wire.joined(separator: Data(",".utf8))) + Data("]".utf8))
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}
