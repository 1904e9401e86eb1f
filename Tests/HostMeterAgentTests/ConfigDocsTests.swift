import Foundation
import TestSupport
import Testing

@testable import HostMeterAgent

/// docs/CONFIG.md against the code: its key table is `AgentConfiguration.keys`, row for row (path,
/// default, reload class, description); the defaults and ranges the table gives are what the
/// parser does, its reload column is what a SIGHUP does, and the `HOSTMETER_…` overrides it
/// describes work so.
@Suite struct ConfigDocsTests {
    struct Row: Equatable {
        var path: String
        var defaultText: String
        var reload: String
        var description: String
    }

    /// The rows of the table under "## Keys", each of the form
    /// "| `path` | `default` | SIGHUP or restart | description |". A row of another form is an error,
    /// so a malformed row cannot drop out of the comparison unnoticed.
    static func documentedKeys() throws -> [Row] {
        let url = TestPaths.file("docs/CONFIG.md")
        let text = try String(contentsOf: url, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(of: "## Keys") else { throw DocsError("docs/CONFIG.md has no \"## Keys\" section") }
        lines = Array(lines[(start + 1)...])
        if let end = lines.firstIndex(where: { $0.hasPrefix("## ") }) { lines = Array(lines[..<end]) }
        let rowPattern = #/^\| `([^`]+)` \| `([^`]*)` \| (SIGHUP|restart) \| (\S.*\S) \|$/#
        var rows: [Row] = []
        for line in lines where line.hasPrefix("|") {
            if line == "| key | default | reload | description |" || line == "| --- | --- | --- | --- |" { continue }
            guard let match = line.wholeMatch(of: rowPattern) else {
                throw DocsError("docs/CONFIG.md: a key row not of the form | `path` | `default` | reload | description |: \(line)")
            }
            rows.append(
                Row(path: String(match.1), defaultText: String(match.2), reload: String(match.3), description: String(match.4)))
        }
        return rows
    }

    struct DocsError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    @Test func tableListsExactlyTheConfigurationKeys() throws {
        let rows = try Self.documentedKeys()
        let documented = rows.map(\.path)
        #expect(Set(documented).count == documented.count, "a key is documented twice: \(documented)")
        let known = Set(AgentConfiguration.keys.map(\.path))
        let missing = known.subtracting(documented).sorted()
        let extra = Set(documented).subtracting(known).sorted()
        #expect(missing.isEmpty, "keys the docs do not list: \(missing)")
        #expect(extra.isEmpty, "documented keys the configuration does not have: \(extra)")
        #expect(rows.count == AgentConfiguration.keys.count)
    }

    @Test func defaultsAndReloadColumnsMatchTheKeys() throws {
        let rows = Dictionary(try Self.documentedKeys().map { ($0.path, $0) }) { first, _ in first }
        for key in AgentConfiguration.keys {
            let row = try #require(rows[key.path], "\(key.path) is not documented")
            #expect(row.defaultText == key.defaultValue, "\(key.path): docs say `\(row.defaultText)`, code `\(key.defaultValue)`")
            #expect(
                row.reload == (key.reloadable ? "SIGHUP" : "restart"),
                "\(key.path): docs say \(row.reload), the key is \(key.reloadable ? "" : "not ")reloadable")
        }
    }

    /// The docs' table is the key table rendered, in its order: a key's description is changed in
    /// ConfigurationKeys.swift and the row copied from the failure's expected text.
    @Test func tableIsTheKeyTableRendered() throws {
        let documented = try Self.documentedKeys()
        let rendered = AgentConfiguration.keys.map(\.documentationRow)
        #expect(documented.map(\.path) == AgentConfiguration.keys.map(\.path), "the docs list the keys in another order")
        for (row, expected) in zip(documented, rendered) {
            let line = "| `\(row.path)` | `\(row.defaultText)` | \(row.reload) | \(row.description) |"
            #expect(line == expected, "docs/CONFIG.md's row differs from the key table; expected:\n\(expected)")
        }
    }

    // MARK: Defaults and ranges

    /// Keys whose default the table gives in words rather than as a YAML value.
    static let defaultsInWords: Set<String> = [
        "host_id", "sample_seconds", "instance_sample_seconds", "host.instance_id", "sink.path", "probes.collectors",
        "probes.disks.exclude", "probes.interfaces.exclude", "probes.filesystems.exclude_types",
    ]

    /// Setting a key to the default the table shows changes nothing: the parser's defaults are the
    /// table's.
    @Test(arguments: AgentConfiguration.keys.map(\.path))
    func theTablesDefaultIsTheParsersDefault(path: String) throws {
        let key = try #require(AgentConfiguration.keys.first { $0.path == path })
        guard !Self.defaultsInWords.contains(path) else { return }
        let unset = try AgentConfiguration.parse("{}")
        #expect(try AgentConfiguration.parse(Self.yaml(path, key.defaultValue)) == unset, "\(path): \(key.defaultValue)")
    }

    /// A number just below the table's range is refused with the table's bounds, and the bound
    /// itself is taken (where nothing else forbids it): the parser's ranges are the table's.
    @Test(arguments: AgentConfiguration.keys.filter { $0.range != nil }.map(\.path))
    func theTablesRangeIsTheParsersRange(path: String) throws {
        let key = try #require(AgentConfiguration.keys.first { $0.path == path })
        let below: String
        let bounds: String
        switch try #require(key.range) {
        case .integer(let range):
            below = "\(range.lowerBound - 1)"
            bounds = "must be between \(range.lowerBound) and \(range.upperBound)"
            // instance_sample_seconds must also be a multiple of sample_seconds (5 by default).
            if path != "instance_sample_seconds" {
                #expect(throws: Never.self) { try AgentConfiguration.parse(Self.yaml(path, "\(range.lowerBound)")) }
            }
        case .decimal(let range):
            below = "\(range.lowerBound / 2)"
            bounds = "must be between \(range.lowerBound) and \(range.upperBound)"
            // retry.cap_seconds may not be below retry.base_seconds (1 by default).
            if path != "retry.cap_seconds" {
                #expect(throws: Never.self) { try AgentConfiguration.parse(Self.yaml(path, "\(range.lowerBound)")) }
            }
        }
        do {
            _ = try AgentConfiguration.parse(Self.yaml(path, below))
            Issue.record("\(path): \(below) was accepted")
        } catch {
            #expect(error.key == path)
            #expect(error.message.hasPrefix(bounds), "\(path): \(error)")
        }
    }

    // MARK: Reloading

    /// A value other than the default for every key (nil where there is none), in YAML.
    static let otherValues: [String: String?] = [
        "host_id": "other-host",
        "interval_seconds": "60",
        "sample_seconds": "1",
        "state_dir": "/tmp/hostmeter-other",
        "identity.key_file": "/etc/hostmeter/identity.pem",
        "commitments.max_events": "50",
        "commitments.max_seconds": "60",
        "instances_dir": "/tmp/hostmeter-other/instances.d",
        "instance_sample_seconds": "5",
        "max_instances": "100",
        "schema_version": "\"1.1\"",
        "api.listen": "127.0.0.1:9999",
        "api.tokens_file": "/etc/hostmeter/tokens.yaml",
        "api.auth_health_and_metrics": "false",
        "api.allow_remote_without_tokens": "true",
        "api.max_connections_per_peer": "8",
        "api.request_timeout_seconds": "30",
        "api.tls.certificate_file": "/etc/hostmeter/api.pem",
        "api.tls.key_file": "/etc/hostmeter/api.key",
        "api.tls.client_ca_file": "/etc/hostmeter/clients-ca.pem",
        "host.enabled": "false",
        "host.instance_id": "vm-1",
        "host.user_id": "user-1",
        "host.org_id": "org-1",
        "sink.type": "stdout",
        "sink.url": "http://127.0.0.1:8888/events",
        "sink.path": "/tmp/hostmeter-other/events.jsonl",
        "sink.token_file": "/etc/hostmeter/consumer.token",
        "sink.batch_max_events": "100",
        "sink.timeout_seconds": "5",
        "sink.connect_timeout_seconds": "2",
        "sink.ca_file": "/etc/hostmeter/ca.pem",
        "sink.headers": "{X-Tenant: acme}",
        "sink.subject": "org_id",
        "sink.compression": "gzip",
        "sink.max_events_per_second": "0",
        "sink.spread_seconds": "0",
        "sink.nats.subject": "hm.{host_id}.{event_type}.{instance_id}",
        "sink.nats.stream": "USAGE",
        "sink.nats.credentials_file": "/etc/hostmeter/nats.creds",
        "sink.nats.nkey": nil,  // only with sink.nats.nkey_seed_file
        "sink.nats.nkey_seed_file": nil,  // only with sink.nats.nkey
        "sink.nats.user": "hostmeter",
        "sink.nats.password_file": nil,  // only with sink.nats.user
        "sink.nats.max_in_flight": "64",
        "sink.kafka.brokers": "127.0.0.1:9092,127.0.0.1:9093",
        "sink.kafka.topic": "billing.usage",
        "sink.kafka.properties": "{compression.type: zstd}",
        "sink.kafka.sasl_password_file": "/etc/hostmeter/kafka.password",
        "retry.base_seconds": "2",
        "retry.cap_seconds": "600",
        "circuit_breaker.failure_threshold": "3",
        "circuit_breaker.open_seconds": "60",
        "outbox.max_bytes": "2097152",
        "thresholds": #"[{name: cpu-high, metric: cpu_percent_avg, op: ">", value: 90}]"#,
        "alerting.alertmanager_url": "http://127.0.0.1:9093",
        "gpu.enabled": "false",
        "gpu.nvml_library": "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
        "log.level": "debug",
        "log.format": "json",
        "probes.proc_root": "/host/proc",
        "probes.sys_root": "/host/sys",
        "probes.rootfs": "/host",
        "probes.collectors": "[cpu, memory]",
        "probes.disks.whole_disks_only": "false",
        "probes.disks.include": "[sd*]",
        "probes.disks.exclude": "[loop*]",
        "probes.interfaces.include": "[eth*]",
        "probes.interfaces.exclude": "[lo, veth*]",
        "probes.filesystems.exclude_types": "[tmpfs]",
        "probes.filesystems.include_mount_points": "[/srv/*]",
        "probes.filesystems.exclude_mount_points": "[/proc/*]",
    ]

    /// YAML setting the dotted `path` to `value`: `a.b` → "a:\n  b: value".
    static func yaml(_ path: String, _ value: String) -> String {
        path.split(separator: ".").enumerated().map { depth, name in
            String(repeating: "  ", count: depth) + "\(name):"
        }.joined(separator: "\n") + " \(value)\n"
    }

    @Test func everyKeyHasAnOtherValueHere() {
        #expect(Set(Self.otherValues.keys) == Set(AgentConfiguration.keys.map(\.path)))
    }

    /// What the docs' reload column promises is what a SIGHUP does: a reloadable key's change is
    /// applied (it lies in what the reloader replaces: the sink, the thresholds, the log settings)
    /// and a restart key's change is reported as needing a restart.
    @Test(arguments: AgentConfiguration.keys.map(\.path))
    func reloadColumnMatchesWhatAReloadDoes(path: String) throws {
        let key = try #require(AgentConfiguration.keys.first { $0.path == path })
        guard let other = Self.otherValues[path] ?? nil else { return }
        let old = try AgentConfiguration.parse("{}")
        let new = try AgentConfiguration.parse(Self.yaml(path, other))
        #expect(new != old, "\(path): \(other) does not change the configuration")
        let restart = AgentConfiguration.restartOnlyChanges(old, new)
        var rest = new
        rest.sink = old.sink
        rest.thresholds = old.thresholds
        rest.log = old.log
        if key.reloadable {
            #expect(restart.isEmpty, "\(path) is documented as SIGHUP but a reload reports it as needing a restart: \(restart)")
            let onlyLiveParts = rest == old
            #expect(onlyLiveParts, "\(path) is documented as SIGHUP but is not part of what a reload applies")
        } else {
            #expect(restart == [path], "\(path) is documented as restart but a reload reports \(restart)")
        }
    }

    // MARK: Environment overrides

    @Test func environmentNamesFollowTheRuleAndAreUnique() {
        var seen: [String: String] = [:]
        for key in AgentConfiguration.keys {
            #expect(key.environmentName == "HOSTMETER_" + key.path.uppercased().replacingOccurrences(of: ".", with: "_"))
            if let earlier = seen[key.environmentName] {
                Issue.record("\(key.path) and \(earlier) share \(key.environmentName)")
            }
            seen[key.environmentName] = key.path
        }
        #expect(seen["HOSTMETER_SINK_URL"] == "sink.url")
        #expect(seen["HOSTMETER_PROBES_INTERFACES_EXCLUDE"] == "probes.interfaces.exclude")
    }

    /// Setting a key through its variable gives the same configuration as setting it in the file.
    @Test(arguments: AgentConfiguration.keys.map(\.path))
    func everyKeyCanBeSetFromTheEnvironment(path: String) throws {
        let key = try #require(AgentConfiguration.keys.first { $0.path == path })
        guard let other = Self.otherValues[path] ?? nil else { return }
        let fromFile = try AgentConfiguration.parse(Self.yaml(path, other))
        let fromEnvironment = try AgentConfiguration.parse("{}", environment: [key.environmentName: other])
        #expect(fromEnvironment == fromFile, "\(key.environmentName)=\(other)")
    }

    @Test func intervalFromTheEnvironmentOverridesTheFile() throws {
        let file = "interval_seconds: 30\nhost_id: h1\n"
        #expect(try AgentConfiguration.parse(file).intervalSeconds == 30)
        let configuration = try AgentConfiguration.parse(file, environment: ["HOSTMETER_INTERVAL_SECONDS": "60"])
        #expect(configuration.intervalSeconds == 60)
        #expect(configuration.hostID == "h1", "the file's other keys stay")
    }

    @Test func sinkURLAndTypeFromTheEnvironment() throws {
        let file = "sink:\n  type: file\n  batch_max_events: 50\n"
        let configuration = try AgentConfiguration.parse(
            file, environment: ["HOSTMETER_SINK_TYPE": "http", "HOSTMETER_SINK_URL": "http://127.0.0.1:8888/api/v1/events"])
        #expect(configuration.sink.type == .http)
        #expect(configuration.sink.url == "http://127.0.0.1:8888/api/v1/events")
        #expect(configuration.sink.batchMaxEvents == 50)
        // Overrides are applied before validation: the type alone, without a url, is refused.
        do {
            _ = try AgentConfiguration.parse(file, environment: ["HOSTMETER_SINK_TYPE": "http"])
            Issue.record("sink type http without a url was accepted")
        } catch {
            #expect(error.key == "sink.url")
        }
    }

    @Test func listValueFromTheEnvironmentReplacesTheFilesList() throws {
        let file = "probes:\n  interfaces:\n    exclude: [eth9]\n"
        #expect(try AgentConfiguration.parse(file).probes.interfaces.exclude == ["eth9"])
        let configuration = try AgentConfiguration.parse(
            file, environment: ["HOSTMETER_PROBES_INTERFACES_EXCLUDE": "[lo, veth*]"])
        #expect(configuration.probes.interfaces.exclude == ["lo", "veth*"])
    }

    @Test func unknownVariableIsRefusedNamingIt() {
        do {
            _ = try AgentConfiguration.parse("interval_seconds: 30\n", environment: ["HOSTMETER_INTERVAL": "60"])
            Issue.record("HOSTMETER_INTERVAL was accepted")
        } catch {
            #expect(error.key == "HOSTMETER_INTERVAL")
            #expect(error.description.contains("HOSTMETER_INTERVAL: no configuration key"), "\(error)")
        }
        // Variables without the prefix are not the configuration's business.
        #expect(throws: Never.self) {
            try AgentConfiguration.parse("{}", environment: ["INTERVAL_SECONDS": "0", "PATH": "/usr/bin"])
        }
    }

    @Test func badValueFromTheEnvironmentNamesVariableAndKey() {
        do {
            _ = try AgentConfiguration.parse("interval_seconds: 30\n", environment: ["HOSTMETER_INTERVAL_SECONDS": "0"])
            Issue.record("interval_seconds 0 from the environment was accepted")
        } catch {
            #expect(error.file == "environment HOSTMETER_INTERVAL_SECONDS")
            #expect(error.key == "interval_seconds")
            #expect(
                error.description == "environment HOSTMETER_INTERVAL_SECONDS: interval_seconds: must be between 1 and 3600, got 0")
        }
        // The same bad value in the file is reported at its line, not as the environment's.
        do {
            _ = try AgentConfiguration.parse("host_id: h1\ninterval_seconds: 0\n", file: "f.yaml")
            Issue.record("interval_seconds 0 in the file was accepted")
        } catch {
            #expect(error.description == "f.yaml:2: interval_seconds: must be between 1 and 3600, got 0")
        }
    }
}
