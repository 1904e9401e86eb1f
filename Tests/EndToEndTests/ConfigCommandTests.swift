import Foundation
import TestSupport
import Testing

/// `hostmeter config check FILE`, run as the built binary: exit 0 and a summary, or exit 2 and the
/// error naming the file, line and key.
@Suite struct ConfigCommandTests {
    /// A scratch directory holding one configuration file.
    struct ConfigFile {
        let directory: URL
        let path: String

        init(_ text: String) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-check-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            path = directory.appendingPathComponent("hostmeter.yaml").path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }

        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    @Test func goodFileIsOkWithSummary() throws {
        let file = try ConfigFile(
            """
            host_id: host-7
            interval_seconds: 60
            state_dir: /srv/meter state
            sink:
              type: cloudevents
              url: https://meter:s3cret@billing.example:8443/api/v1/events
            """)
        defer { file.remove() }
        let result = try hostmeter("config", "check", file.path)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = String(decoding: result.stdout, as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first == "\(file.path): ok")
        let summary = lines.last ?? ""
        #expect(summary.hasPrefix("host_id=host-7 interval_seconds=60 sink.type=cloudevents "))
        #expect(summary.contains("state_dir=\"/srv/meter state\""), "a value with a space is quoted")
        #expect(summary.contains("sink.url=https://meter:xxx@billing.example:8443/api/v1/events"))
        #expect(!summary.contains("s3cret"), "the URL's password is not printed")
        #expect(result.stderr.isEmpty)
    }

    @Test func fileSinkSummaryNamesItsFile() throws {
        let file = try ConfigFile("host_id: h1\nstate_dir: /var/tmp/hm\n")
        defer { file.remove() }
        let result = try hostmeter("config", "check", file.path)
        #expect(result.status == 0, "\(result.stderr)")
        let summary = String(decoding: result.stdout, as: UTF8.self)
        #expect(summary.contains("sink.type=file sink.path=/var/tmp/hm/events.jsonl state_dir=/var/tmp/hm"))
    }

    /// The configuration the Debian package installs as /etc/hostmeter/hostmeter.yaml.
    @Test func packagedDefaultConfigurationPasses() throws {
        let path = TestPaths.packageRoot.appendingPathComponent("packaging/hostmeter.yaml").path
        let result = try hostmeter("config", "check", path)
        #expect(result.status == 0, "\(result.stderr)")
        let summary = String(decoding: result.stdout, as: UTF8.self)
        #expect(summary.contains("interval_seconds=30 sink.type=file sink.path=/var/lib/hostmeter/events.jsonl"))
        #expect(summary.contains("state_dir=/var/lib/hostmeter api.listen=127.0.0.1:9780"))
    }

    @Test func unknownKeyExits2NamingKeyAndLine() throws {
        let file = try ConfigFile(
            """
            interval_seconds: 30
            sink:
              tpye: file
            """)
        defer { file.remove() }
        let result = try hostmeter("config", "check", file.path)
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty, "nothing claims the file is ok")
        #expect(result.stderr.contains("\(file.path):3: sink.tpye: unknown key"), "\(result.stderr)")
    }

    @Test func badValueExits2NamingKey() throws {
        let file = try ConfigFile("host_id: h1\ninterval_seconds: 0\n")
        defer { file.remove() }
        let result = try hostmeter("config", "check", file.path)
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(file.path):2: interval_seconds: must be between 1 and 3600"), "\(result.stderr)")
    }

    /// Beyond loopback without tokens, anyone who reaches the port would read every user's
    /// usage: refused unless the configuration says so in as many words.
    @Test(arguments: ["0.0.0.0:9780", ":9780", "10.1.2.3:9780", "[::]:9780", "127.attacker.example:9780"])
    func listeningBeyondLoopbackWithoutTokensExits2(listen: String) throws {
        let file = try ConfigFile("api:\n  listen: \"\(listen)\"\n")
        defer { file.remove() }
        let result = try hostmeter("config", "check", file.path)
        #expect(result.status == 2, "\(listen): \(result.stdout)")
        #expect(result.stderr.contains("\(file.path):2: api.listen:"), "\(result.stderr)")
        #expect(result.stderr.contains("api.allow_remote_without_tokens"), "\(result.stderr)")

        let allowed = try ConfigFile("api:\n  listen: \"\(listen)\"\n  allow_remote_without_tokens: true\n")
        defer { allowed.remove() }
        #expect(try hostmeter("config", "check", allowed.path).status == 0)
    }

    @Test(arguments: ["127.0.0.1:9780", "127.9.8.7:1", "[::1]:9780", "[0:0:0:0:0:0:0:1]:9780", "localhost:9780"])
    func loopbackWithoutTokensIsFine(listen: String) throws {
        let file = try ConfigFile("api:\n  listen: \"\(listen)\"\n")
        defer { file.remove() }
        let result = try hostmeter("config", "check", file.path)
        #expect(result.status == 0, "\(listen): \(result.stderr)")
    }

    /// A configured tokens file that holds no token would turn authentication off: refused, by
    /// `config check` and by `run`, naming the file.
    @Test(arguments: ["", "{}\n", "# nobody yet\n"])
    func aTokensFileWithoutTokensExits2NamingIt(tokens: String) throws {
        let file = try ConfigFile("")
        defer { file.remove() }
        let tokensPath = file.directory.appendingPathComponent("tokens.yaml").path
        try Data(tokens.utf8).write(to: URL(fileURLWithPath: tokensPath))
        let stateDirectory = file.directory.appendingPathComponent("state").path
        try Data(
            "state_dir: \"\(stateDirectory)\"\napi:\n  listen: 127.0.0.1:0\n  tokens_file: \"\(tokensPath)\"\n".utf8
        ).write(to: URL(fileURLWithPath: file.path))
        let check = try hostmeter("config", "check", file.path)
        #expect(check.status == 2)
        #expect(check.stderr.contains("\(tokensPath): api.tokens_file: holds no token"), "\(check.stderr)")
        let run = try hostmeter("run", "--config", file.path)
        #expect(run.status == 2)
        #expect(run.stderr.contains("\(tokensPath)") && run.stderr.contains("holds no token"), "\(run.stderr)")
    }

    @Test func missingFileExits2NamingIt() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-\(UUID().uuidString).yaml").path
        let result = try hostmeter("config", "check", path)
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("\(path): cannot read"), "\(result.stderr)")
    }
}
