import ArgumentParser
import Foundation
import HostMeterAgent
import Outbox

/// `hostmeter outbox …`: look into the outbox and send dead letters again.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox", abstract: "Inspect the outbox and its dead letters.",
        subcommands: [Stats.self, Dead.self, Replay.self])

    /// Where the database is: from the configuration's state_dir, or given directly.
    struct Location: ParsableArguments {
        @Option(help: "The configuration file whose state_dir holds the database.")
        var config = AgentConfiguration.defaultPath

        @Option(help: "The database file, instead of the one under the configuration's state_dir.")
        var database: String?

        func open() throws -> AgentDatabase {
            let path: String
            if let database {
                path = database
            } else {
                do {
                    path = try AgentConfiguration.load(path: config).databasePath
                } catch {
                    FileHandle.standardError.write(Data("hostmeter: \(error)\n".utf8))
                    throw ExitCode(2)
                }
            }
            guard FileManager.default.fileExists(atPath: path) else {
                FileHandle.standardError.write(Data("hostmeter: no database at \(path)\n".utf8))
                throw ExitCode.failure
            }
            do {
                return try AgentDatabase.open(path: path)
            } catch {
                FileHandle.standardError.write(Data("hostmeter: \(error)\n".utf8))
                throw ExitCode.failure
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pending and dead-letter counts, as JSON.")
        @OptionGroup var location: Location

        func run() throws {
            let stats = try location.open().stats()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(stats), as: UTF8.self))
        }
    }

    struct Dead: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters with their reasons, one JSON object a line.")
        @OptionGroup var location: Location

        struct Line: Encodable {
            let event_id: String
            let instance_id: String
            let period_start: Int64
            let period_end: Int64
            let attempts: Int
            let reason: String
            let dead_at: Double
        }

        func run() throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            for letter in try location.open().deadLetters() {
                let line = Line(
                    event_id: letter.event.eventID, instance_id: letter.event.instanceID,
                    period_start: letter.event.periodStart, period_end: letter.event.periodEnd,
                    attempts: letter.attempts, reason: letter.reason, dead_at: letter.deadAt)
                print(String(decoding: try encoder.encode(line), as: UTF8.self))
            }
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move dead letters back to pending, to be sent again.")
        @OptionGroup var location: Location

        @Flag(help: "Replay every dead letter.")
        var all = false

        @Argument(help: "Event ids to replay.")
        var eventIDs: [String] = []

        func validate() throws {
            if all == !eventIDs.isEmpty { throw ValidationError("give --all or one or more event ids, not both") }
        }

        func run() throws {
            let moved = try location.open().replay(eventIDs: all ? nil : eventIDs)
            print("replayed \(moved) event\(moved == 1 ? "" : "s")")
            if !all, moved < eventIDs.count {
                FileHandle.standardError.write(Data("hostmeter: \(eventIDs.count - moved) id(s) were not dead letters\n".utf8))
                throw ExitCode.failure
            }
        }
    }
}
