import AgentAPI
import Foundation
import HostMeterAgent
import TestSupport
import Testing
import Yams
import InputGuards

/// `YAMLGuard`: anchors and aliases refused before Yams composes a file (an alias used as a
/// mapping key keeps Yams' composer busy for minutes), as libyaml's scanner finds them: not inside
/// quoted, plain or block scalars, comments or tags. What it accepts, Yams composes without an
/// anchor.
@Suite struct YAMLGuardTests {
    /// Tests/Fixtures/fuzz/agent, as FuzzRegressionTests finds it.
    static let fixtures = URL(fileURLWithPath: FuzzInput.folder(harness: "agent"))

    static func bomb(_ target: String) throws -> String {
        try String(contentsOf: fixtures.appendingPathComponent("\(target)/alias-bomb-as-mapping-key"), encoding: .utf8)
    }

    /// Runs `body` on a thread of its own and waits at most `seconds`: the unfixed code never
    /// returns from Yams, and a test must fail rather than hang.
    static func finishes<T: Sendable>(within seconds: Double, _ body: @escaping @Sendable () -> T) -> T? {
        let done = DispatchSemaphore(value: 0)
        let result = ResultBox<T>()
        Thread {
            result.value = body()
            done.signal()
        }.start()
        guard done.wait(timeout: .now() + seconds) == .success else { return nil }
        return result.value
    }

    final class ResultBox<T>: @unchecked Sendable {
        // Written once by the thread before it signals, read after the wait: the semaphore orders them.
        var value: T?
    }

    @Test(arguments: [
        "a: 1\nb: loop*\n",
        "disks: {exclude: [loop*, ram*, dm-*]}\n",
        "a: 'it''s *x and &y'\n",
        "a: \"*x \\\" &y\"\n",
        "a: x *y &z\n",
        "a: [loop*, x&y]\n",
        "a: |\n  *x\n  &y: 1\nb: 2\n",
        "a: >-\n  folded *x\n\n  &more\nz: 1\n",
        "a: foo\n  *x continues the plain scalar\n",
        "a: # *x is a comment\n  b\n",
        "a: b#*x\n",
        "a: !tag*x 1\n",
        "\"a\"#*x\n",
        "%YAML 1.1\n---\na: 1\n",
        "{\"instance_id\": \"vm-1\", \"user_id\": \"*alice&\"}",
        "a: [b, {c: \"*d\"}]\n",
        "",
    ])
    func textWithoutAnchorsIsAccepted(yaml: String) throws {
        try YAMLGuard.check(yaml)
        try Self.expectComposedWithoutAnchors(yaml)
    }

    @Test(arguments: [
        ("a: &x 1\nb: *x\n", 1, 4),
        ("a: 1\nb: *x\n", 2, 4),
        ("? *bomb : 1\n", 1, 3),
        ("a: [1, *x]\n", 1, 8),
        ("a: {b: &c 1}\n", 1, 8),
        ("a: |\n  text\n*x: 1\n", 3, 1),
        ("- b: |\n  *x\n", 2, 3),
        ("a: !t *x\n", 1, 7),
        ("a: b\n---\n*x\n", 3, 1),
        ("a:\n  - b: *c\n", 2, 8),
        ("x: 'q'\n&y z: 1\n", 2, 1),
    ])
    func anchorsAndAliasesAreRefusedNamingLineAndColumn(yaml: String, line: Int, column: Int) {
        do {
            try YAMLGuard.check(yaml)
            Issue.record("accepted \(yaml.debugDescription)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.column == column, "\(error)")
            #expect(error.message.contains("YAML anchors and aliases are not allowed"), "\(error)")
        }
    }

    /// Where the scan cannot follow libyaml (text libyaml refuses too), any later `*` or `&` is
    /// refused rather than guessed about.
    @Test func aStarAfterTextLibyamlRefusesIsRefused() throws {
        #expect(throws: YAMLGuardError.self) { try YAMLGuard.check("a: \"\\q\" : : x\n- &y\n") }
        #expect(throws: YAMLGuardError.self) { try YAMLGuard.check("%BOGUS directive\n--- &a 1\n") }
        // Broken YAML without a `*` or `&` after the break is left to Yams, which names the error.
        try YAMLGuard.check("a: [1, 2\n")
    }

    @Test func deepNestingAndLargeTextAreRefused() {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: YAMLGuardError.self) { try YAMLGuard.check(deep) }
        #expect((try? YAMLGuard.check(String(repeating: "[", count: 64) + String(repeating: "]", count: 64))) != nil)
        var block = ""
        for level in 0...64 { block += String(repeating: " ", count: level) + "- \n" }
        #expect(throws: YAMLGuardError.self) { try YAMLGuard.check(block) }
        do {
            try YAMLGuard.check(String(repeating: "a", count: 101), maxBytes: 100)
            Issue.record("101 bytes accepted under a limit of 100")
        } catch {
            #expect(error.message == "101 bytes is more than the 100 bytes allowed")
        }
    }

    /// The fixture of issue 16: 442 bytes whose last key is an alias of 2^26 nodes. Refused in
    /// the configuration, a manifest and a tokens file, naming the file and line, in well under a
    /// second where Yams alone runs for minutes.
    @Test func theAliasBombIsRefusedWhereverYAMLIsRead() throws {
        let manifest = try Self.bomb("instance_manifest_file")
        let configuration = try Self.bomb("config")
        let started = ContinuousClock.now

        let problem = Self.finishes(within: 20) { InstanceDirectory.parse(manifest, file: "/etc/hostmeter/instances.d/vm.yaml") }
        switch try #require(problem, "the manifest's parse did not finish within 20 s") {
        case .success(let parsed): Issue.record("accepted \(parsed)")
        case .failure(let problem):
            #expect(problem.file == "/etc/hostmeter/instances.d/vm.yaml")
            #expect(problem.message.hasPrefix("line 3: an anchor (&a) at column 4: YAML anchors and aliases are not allowed"), "\(problem)")
        }

        let configurationError = Self.finishes(within: 20) { () -> ConfigurationError? in
            do throws(ConfigurationError) {
                _ = try AgentConfiguration.parse(configuration, file: "/etc/hostmeter/hostmeter.yaml")
                return nil
            } catch {
                return error
            }
        }
        let configurationFinished = try #require(configurationError, "the configuration's parse did not finish within 20 s")
        let refused = try #require(configurationFinished, "the bomb was accepted as a configuration")
        #expect(refused.description.hasPrefix("/etc/hostmeter/hostmeter.yaml:2: an anchor (&a)"), "\(refused)")
        #expect(refused.message.contains("YAML anchors and aliases are not allowed"), "\(refused)")

        let tokens = "0000000000000000000000000000000000000000000000000000000000000000: admin\n" + configuration
        let tokensError = Self.finishes(within: 20) { () -> String? in
            do {
                _ = try TokenStore.parse(tokens, file: "/etc/hostmeter/tokens.yaml")
                return nil
            } catch {
                return "\(error)"
            }
        }
        let tokensFinished = try #require(tokensError, "the tokens file's parse did not finish within 20 s")
        let tokensRefusal = try #require(tokensFinished, "the bomb was accepted as a tokens file")
        #expect(tokensRefusal.hasPrefix("/etc/hostmeter/tokens.yaml: line 3: an anchor (&a)"), "\(tokensRefusal)")

        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func anEnvironmentValueWithAnAliasIsRefusedNamingTheVariable() {
        do {
            _ = try AgentConfiguration.parse("{}", environment: ["HOSTMETER_PROBES_DISKS_INCLUDE": "[*a, *a]"])
            Issue.record("accepted")
        } catch {
            #expect(error.file == "environment")
            #expect(error.key == "probes.disks.include")
            #expect(error.message.contains("HOSTMETER_PROBES_DISKS_INCLUDE: line 1: an alias (*a)"), "\(error)")
        }
    }

    /// The project's own YAML: every fuzz seed of the configuration and manifest targets, the
    /// packaged and local configurations. Each is either refused for an anchor or alias that Yams
    /// indeed composes as one, or accepted and composed without any.
    @Test func theRepositorysYAMLIsJudgedAsYamsReadsIt() throws {
        let root = TestPaths.packageRoot
        var files = ["packaging/hostmeter.yaml", "config/hostmeter.local.yaml"].map { root.appendingPathComponent($0) }
        for folder in ["fuzz/corpus/config", "fuzz/corpus/instance_manifest_file"] {
            let directory = root.appendingPathComponent(folder)
            files += try FileManager.default.contentsOfDirectory(atPath: directory.path).map { directory.appendingPathComponent($0) }
        }
        #expect(files.count > 20)
        var refused = 0
        for file in files {
            let text = String(decoding: try Data(contentsOf: file), as: UTF8.self)
            do {
                try YAMLGuard.check(text)
                try Self.expectComposedWithoutAnchors(text, file.lastPathComponent)
            } catch let error as YAMLGuardError {
                refused += 1
                #expect(error.message.contains("anchor") || error.message.contains("alias"), "\(file.lastPathComponent): \(error)")
            }
        }
        // The seeds with anchors (anchors.yaml, anchors-merge.yaml …) are among them.
        #expect(refused >= 2)
        try YAMLGuard.check(try String(contentsOf: root.appendingPathComponent("packaging/hostmeter.yaml"), encoding: .utf8))
    }

    /// Random YAML-like text from the characters that matter (indicators, quotes, breaks,
    /// indentation): whatever the guard accepts, Yams composes without an anchor or an undefined
    /// alias. A fixed seed, so a failure replays.
    @Test func whateverIsAcceptedYamsComposesWithoutAnchors() throws {
        let pieces = [
            "a", "b: ", "- ", "? ", ": ", "*a", "&a ", "[", "]", "{", "}", ", ", "'", "\"", "\\", "|", ">", "#", "!t ",
            "\n", "\n  ", "\n    ", " ", "---\n", "x*y", "%YAML 1.1\n", "\t", "''",
        ]
        var generator = SplitMix64(state: 0x16_A11A5)
        var accepted = 0
        for _ in 0..<20_000 {
            let count = Int(generator.next() % 12) + 1
            var text = ""
            for _ in 0..<count { text += pieces[Int(generator.next() % UInt64(pieces.count))] }
            guard (try? YAMLGuard.check(text)) != nil else { continue }
            accepted += 1
            try Self.expectComposedWithoutAnchors(text)
        }
        #expect(accepted > 2_000)
    }

    /// Composes every document of `text` while the parser (which holds the anchors; nodes keep
    /// them weakly) lives, and expects no node to have an anchor and no alias to be undefined.
    static func expectComposedWithoutAnchors(_ text: String, _ name: String = "") throws {
        let parser: Parser
        do {
            parser = try Parser(yaml: text)
        } catch {
            return
        }
        while true {
            let node: Node?
            do {
                node = try parser.nextRoot()
            } catch {
                #expect(!"\(error)".contains("undefined alias"), "\(name) \(text.debugDescription): \(error)")
                return
            }
            guard let node else { return }
            withExtendedLifetime(parser) {
                #expect(!hasAnchor(node), "\(name) \(text.debugDescription) has an anchor")
            }
        }
    }

    static func hasAnchor(_ node: Node) -> Bool {
        if node.anchor != nil { return true }
        switch node {
        case .scalar: return false
        case .alias: return true
        case .sequence(let sequence): return sequence.contains(where: hasAnchor)
        case .mapping(let mapping): return mapping.contains { hasAnchor($0.key) || hasAnchor($0.value) }
        }
    }
}
