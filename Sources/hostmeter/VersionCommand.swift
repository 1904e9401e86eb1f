import ArgumentParser
import UsageModel

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the agent's version.")

    func run() {
        print("hostmeter \(AgentVersion.current)")
    }
}

