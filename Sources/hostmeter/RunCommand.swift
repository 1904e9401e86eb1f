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
        let settings = LogSettings(
            level: Logger.Level(rawValue: configuration.log.level.rawValue) ?? .info,
            format: configuration.log.format == .json ? .json : .logfmt)
        LoggingSystem.bootstrap { LineLogHandler(label: $0, settings: settings) }
        let logger = Logger(label: "hostmeter")
        let runtime: AgentRuntime
        do {
            runtime = try Agent.build(
                configuration: configuration, logger: logger, configurationPath: config, logSettings: settings,
                notifier: SystemdNotifier())
        } catch let error as ConfigurationError {
            logger.critical("hostmeter cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        } catch {
            logger.critical("hostmeter cannot start", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
        do {
            let group = runtime.serviceGroup
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
