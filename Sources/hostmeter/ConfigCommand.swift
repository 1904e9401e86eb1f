import ArgumentParser
import Foundation
import HostMeterAgent

/// `hostmeter config …`: work with configuration files without running the agent.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check configuration files.", subcommands: [Check.self])

    /// `hostmeter config check [FILE]`: validates a file exactly as `hostmeter run` would load it.
    /// Exit 0 with "FILE: ok" and a summary, or exit 2 with the error (file, line, key) on stderr.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration file; exit 0 if it is usable, 2 if not.")

        @Argument(help: "The configuration file.")
        var file = AgentConfiguration.defaultPath

        func run() throws {
            let configuration: AgentConfiguration
            do {
                configuration = try AgentConfiguration.load(path: file)
                _ = try Agent.loadTokens(configuration)
                // The API's TLS files are checked as `hostmeter run` checks them.
                _ = try Agent.loadAPITLS(configuration, configurationPath: file)
                // librdkafka's verdict on the kafka sink's properties, without connecting.
                try Agent.checkSinkProperties(configuration, configurationPath: file)
            } catch {
                FileHandle.standardError.write(Data("hostmeter: \(error)\n".utf8))
                throw ExitCode(2)
            }
            print("\(file): ok")
            print(Self.summary(of: configuration))
        }

        /// One logfmt line with what an operator most wants to confirm: who, how often, where to.
        static func summary(of configuration: AgentConfiguration) -> String {
            var fields: [(String, String)] = [
                ("host_id", configuration.hostID),
                ("interval_seconds", String(configuration.intervalSeconds)),
                ("sink.type", configuration.sink.type.rawValue),
            ]
            switch configuration.sink.type {
            case .file: fields.append(("sink.path", configuration.sinkFilePath))
            case .http, .cloudevents: fields.append(("sink.url", redacted(configuration.sink.url ?? "")))
            case .nats:
                let servers = (configuration.sink.url ?? "").split(separator: ",").map { redacted(String($0)) }
                fields.append(("sink.url", servers.joined(separator: ",")))
                fields.append(("sink.nats.subject", configuration.sink.nats.subject.description))
            case .kafka:
                fields.append(("sink.kafka.brokers", configuration.sink.kafka.brokers ?? ""))
                fields.append(("sink.kafka.topic", configuration.sink.kafka.topic))
            case .stdout: break
            }
            fields.append(("state_dir", configuration.stateDirectory))
            fields.append(("api.listen", configuration.api.listen))
            return fields.map { "\($0)=\(quoted($1))" }.joined(separator: " ")
        }

        /// A URL with any password in its user info replaced, so the summary is safe to paste.
        static func redacted(_ url: String) -> String {
            guard var components = URLComponents(string: url), components.password != nil else { return url }
            components.password = "xxx"
            return components.string ?? url
        }

        /// logfmt quoting: bare when it is safe, otherwise a double-quoted string with escapes.
        static func quoted(_ value: String) -> String {
            let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" }
            guard needsQuotes else { return value }
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\""
        }
    }
}
