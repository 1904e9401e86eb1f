import ArgumentParser
import Foundation
import Probes

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
    }

    func run() async throws {
        let sampler = HostSampler(
            configuration: HostSamplerConfiguration(procRoot: procRoot, sysRoot: sysRoot, rootfs: rootfs))
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
        let data = try encoder.encode(SampleReport(sample: sample, rates: rates))
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

/// A sample with, when two were taken, the rates between them.
struct SampleReport: Encodable {
    let sample: HostSample
    let rates: HostRates?

    func encode(to encoder: any Encoder) throws {
        try sample.encode(to: encoder)
        if let rates {
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(rates, forKey: .rates)
        }
    }

    private enum Key: String, CodingKey { case rates }
}
