import ArgumentParser
import Foundation
import HostMeterAgent
import Logging
import Shipping
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// `hostmeter run`: the agent.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the agent: sample, meter and store usage until stopped.")

    @Option(help: "The configuration file.")
    var config = AgentConfiguration.defaultPath

    func run() async throws {
        // As under systemd: a reader of stdout or stderr that goes away makes a write fail with
        // EPIPE, which the stdout sink retries and the log handler counts, instead of the signal
        // ending the agent.
        signal(SIGPIPE, SIG_IGN)
        let configuration: AgentConfiguration
        do {
            configuration = try AgentConfiguration.load(path: config)
        } catch {
            DescriptorWriter.write("hostmeter: \(error)\n", to: 2)
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
