import ArgumentParser

/// The `hostmeter` command line. Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
@main
struct HostMeterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hostmeter",
        abstract: "Usage metering agent for VM hosts.",
        subcommands: [SampleCommand.self, VersionCommand.self]
    )
}
