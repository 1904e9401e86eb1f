import ArgumentParser
import Foundation
import HostMeterAgent
import Logging
import UsageModel

/// `hostmeter run`: the agent.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the agent: sample, meter and store usage until stopped.")

    @Option(help: "The configuration file.")
    var config = AgentConfiguration.defaultPath

    func run() async throws {
        let configuration: AgentConfiguration
        do {
            configuration = try AgentConfiguration.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("hostmeter: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let level = Logger.Level(rawValue: configuration.log.level.rawValue) ?? .info
        let format: LineLogHandler.Format = configuration.log.format == .json ? .json : .logfmt
        LoggingSystem.bootstrap { LineLogHandler(label: $0, level: level, format: format) }
        let logger = Logger(label: "hostmeter")
        do {
            let group = try Agent.build(configuration: configuration, logger: logger).serviceGroup
            logger.info(
                "hostmeter starting",
                metadata: ["version": "\(AgentVersion.current)", "config": "\(config)",
                           "state_dir": "\(configuration.stateDirectory)"])
            try await group.run()
        } catch {
            logger.critical("hostmeter stopped on an error", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
    }
}
