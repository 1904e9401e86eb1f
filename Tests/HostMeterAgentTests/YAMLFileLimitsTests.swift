import AgentAPI
import Foundation
import Testing

@testable import HostMeterAgent
import InputGuards

/// The configuration and tokens files are read with a bound (1 MiB; a full configuration is a few
/// kilobytes), so a wrong path such as a large log file or /dev/zero is refused naming the file
/// rather than read into memory.
@Suite struct YAMLFileLimitsTests {
    struct Scratch {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("yaml-limits-\(UUID().uuidString)")
        init() throws { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        func remove() { try? FileManager.default.removeItem(at: directory) }

        func write(_ name: String, bytes: Int) throws -> String {
            let file = directory.appendingPathComponent(name).path
            // A YAML comment of `bytes` bytes: valid, just too large.
            try Data(("#" + String(repeating: "x", count: bytes - 2) + "\n").utf8).write(to: URL(fileURLWithPath: file))
            return file
        }
    }

    @Test func aConfigurationOverOneMebibyteIsRefusedNamingTheFile() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let file = try scratch.write("hostmeter.yaml", bytes: YAMLGuard.defaultMaxBytes + 4096)
        do {
            _ = try AgentConfiguration.load(path: file, environment: [:])
            Issue.record("a configuration over the limit was read")
        } catch {
            #expect(error.file == file)
            #expect(error.message == "cannot read: it is larger than the \(YAMLGuard.defaultMaxBytes) bytes allowed", "\(error)")
        }
        let small = try scratch.write("small.yaml", bytes: 100)
        #expect(try AgentConfiguration.load(path: small, environment: [:]).intervalSeconds == 30)
        do {
            _ = try AgentConfiguration.load(path: scratch.directory.appendingPathComponent("missing.yaml").path, environment: [:])
            Issue.record("a missing file was read")
        } catch {
            #expect(error.message == "cannot read: No such file or directory", "\(error)")
        }
    }

    @Test func aTokensFileOverOneMebibyteIsRefusedNamingTheFileAndKey() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        var configuration = AgentConfiguration()
        configuration.api.tokensFile = try scratch.write("tokens.yaml", bytes: YAMLGuard.defaultMaxBytes + 4096)
        do {
            _ = try Agent.loadTokens(configuration)
            Issue.record("a tokens file over the limit was read")
        } catch {
            #expect(error.file == configuration.api.tokensFile)
            #expect(error.key == "api.tokens_file")
            #expect(error.message == "cannot read: it is larger than the \(YAMLGuard.defaultMaxBytes) bytes allowed", "\(error)")
        }
    }
}
