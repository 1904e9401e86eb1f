import ArgumentParser
import Foundation
import HostMeterAgent

/// The `hostmeter` command line.
///
/// Exit codes are part of the contract: 0 success, 1 runtime failure, 2 bad usage or bad
/// configuration. ArgumentParser's own usage code (64, EX_USAGE) is mapped to 2.
///
/// The entry point is synchronous: it installs the process's executors before any task exists
/// (`ProcessExecutors`), then runs the command as the main actor's task on the main thread.
@main
enum Entry {
    static func main() {
        ProcessExecutors.runMain { await HostMeterCommand.main() }
    }
}

struct HostMeterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hostmeter",
        abstract: "Usage metering agent for VM hosts.",
        subcommands: [
            RunCommand.self, SampleCommand.self, OutboxCommand.self, IdentityCommand.self, VerifyCommand.self, ConfigCommand.self,
            VersionCommand.self,
        ]
    )

    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
                Foundation.exit(0)
            }
            if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            Foundation.exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}
