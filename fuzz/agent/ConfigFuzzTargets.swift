import AgentAPI
import Foundation
import HostMeterAgent
import Metering
import Probes

/// Targets for what an operator or an orchestrator writes into files: the configuration, its
/// `api.listen`, and the manifest files of `instances_dir`.
enum ConfigFuzzTargets {
    static let all: [FuzzTarget] = [
        FuzzTarget(name: "config") { bytes in
            let yaml = text(bytes)
            // As written, then under a fixed set of HOSTMETER_ overrides that replace keys at each
            // depth of the document, so applying them to any tree the text makes is fuzzed too.
            if let configuration = parseConfiguration(yaml, environment: [:]) {
                checkRanges(configuration)
            }
            if let configuration = parseConfiguration(yaml, environment: environment) {
                checkRanges(configuration)
                checkOverrides(configuration)
            }
        },
        FuzzTarget(name: "listen_address") { bytes in
            let address = text(bytes)
            do throws(ListenAddressError) {
                let (host, port) = try ListenAddress.parse(address)
                check((0...65535).contains(port), "port \(port) from \(String(reflecting: address))")
                check(!host.isEmpty, "an empty host from \(String(reflecting: address))")
                // What the server binds is a host name or address, byte for byte: no brackets, and
                // a ':' only in an IPv6 address, which is written in brackets.
                let bytes = Array(host.utf8)
                check(
                    !bytes.contains(UInt8(ascii: "[")) && !bytes.contains(UInt8(ascii: "]"))
                        && (!bytes.contains(UInt8(ascii: ":")) || address.utf8.first == UInt8(ascii: "[")),
                    "\(String(reflecting: address)) gave host \(String(reflecting: host))")
                // Written back the usual way (in brackets when the host has a ':' byte), the address
                // names the same host and port.
                let written = host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]:\(port)" : "\(host):\(port)"
                let again = try? ListenAddress.parse(written)
                check(
                    again.map { $0 == (host, port) } ?? false,
                    "\(String(reflecting: address)) gave \(String(reflecting: host)) port \(port), written back as \(String(reflecting: written))")
            } catch {
                check(!error.description.isEmpty, "an error without a message")
            }
        },
        FuzzTarget(name: "instance_manifest_file") { bytes in
            switch InstanceDirectory.parse(text(bytes), file: "/fuzz/vm.yaml") {
            case .success(let manifest):
                checkManifest(manifest)
            case .failure(let problem):
                check(problem.file == "/fuzz/vm.yaml" && !problem.message.isEmpty, "problem \(problem)")
            }
        },
    ]

    /// The overrides of the second parse; `PATH` is not one of ours and must be left alone.
    static let environment = [
        "HOSTMETER_INTERVAL_SECONDS": "60",
        "HOSTMETER_SINK_URL": "https://collector.example/v1/usage",
        "HOSTMETER_LOG_LEVEL": "debug",
        "HOSTMETER_PROBES_DISKS_INCLUDE": "[sd*, nvme*]",
        "HOSTMETER_THRESHOLDS": "[{name: cpu_high, metric: cpu_percent_avg, op: '>', value: 90, clear: 80}]",
        "PATH": "/usr/bin:/bin",
    ]

    /// The configuration, or nil when it was refused with a usable error.
    private static func parseConfiguration(_ yaml: String, environment: [String: String]) -> AgentConfiguration? {
        do throws(ConfigurationError) {
            let configuration = try AgentConfiguration.parse(yaml, file: "/fuzz/hostmeter.yaml", environment: environment)
            // Parsing is a function of its input: a SIGHUP with an unchanged file changes nothing.
            let again = try? AgentConfiguration.parse(yaml, file: "/fuzz/hostmeter.yaml", environment: environment)
            check(again == configuration, "a second parse of the same text gave another configuration or failed")
            return configuration
        } catch {
            check(!error.message.isEmpty, "an error without a message: \(error)")
            if let line = error.line {
                // The line an operator is sent to is one of the file's. YAML breaks lines at
                // \n, \r, \r\n, U+0085, U+2028 and U+2029 (\r\n counted twice only loosens the
                // bound), and libyaml puts the end of a text that does not end in a break on a
                // line of its own: one past the last.
                let breaks = yaml.unicodeScalars.count { "\n\r\u{85}\u{2028}\u{2029}".unicodeScalars.contains($0) }
                check(
                    error.file == "/fuzz/hostmeter.yaml" && (1...breaks + 2).contains(line),
                    "line \(line) of a text with \(breaks) line breaks: \(error)")
            }
            return nil
        }
    }

    /// What the agent relies on in an accepted configuration: every value inside the range that
    /// docs/CONFIG.md gives it.
    private static func checkRanges(_ configuration: AgentConfiguration) {
        let interval = configuration.intervalSeconds
        check((1...3600).contains(interval), "interval_seconds \(interval)")
        let sample = configuration.effectiveSampleSeconds
        check((1...interval).contains(sample), "sample every \(sample) s in a period of \(interval) s")
        let instanceSample = configuration.effectiveInstanceSampleSeconds
        check(
            (sample...interval).contains(instanceSample) && instanceSample % sample == 0,
            "instances every \(instanceSample) s, samples every \(sample) s, period \(interval) s")
        for (key, id) in [
            ("host_id", configuration.hostID), ("host.instance_id", configuration.hostInstanceID),
            ("host.user_id", configuration.host.userID), ("host.org_id", configuration.host.orgID ?? "org"),
        ] {
            check(isIdentifier(id), "\(key) \(String(reflecting: id))")
        }
        check(!configuration.stateDirectory.isEmpty && !configuration.instancesDirectory.isEmpty, "an empty directory")
        check((try? ListenAddress.parse(configuration.api.listen)) != nil, "api.listen \(configuration.api.listen)")

        let sink = configuration.sink
        check((1...100_000).contains(sink.batchMaxEvents), "sink.batch_max_events \(sink.batchMaxEvents)")
        check((0.1...3600).contains(sink.timeoutSeconds), "sink.timeout_seconds \(sink.timeoutSeconds)")
        check((0.1...600).contains(sink.connectTimeoutSeconds), "sink.connect_timeout_seconds \(sink.connectTimeoutSeconds)")
        if sink.type == .http || sink.type == .cloudevents {
            check(isHTTPURL(sink.url, needsHost: false), "sink \(sink.type) with url \(String(describing: sink.url))")
        }
        for name in sink.headers.keys {
            check(
                !name.isEmpty && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") },
                "header name \(String(reflecting: name))")
        }

        let retry = configuration.retry
        check(
            (0.001...3600).contains(retry.baseSeconds) && (0.001...86400).contains(retry.capSeconds)
                && retry.baseSeconds <= retry.capSeconds,
            "retry \(retry)")
        let breaker = configuration.circuitBreaker
        check(
            (1...1000).contains(breaker.failureThreshold) && (0.01...86400).contains(breaker.openSeconds), "breaker \(breaker)")
        check(configuration.outbox.maxBytes >= 1_048_576, "outbox.max_bytes \(configuration.outbox.maxBytes)")
        if let url = configuration.alerting.alertmanagerURL {
            check(isHTTPURL(url, needsHost: true), "alerting.alertmanager_url \(String(reflecting: url))")
        }
        checkRules(configuration.thresholds)

        // What the sampler does next with the probes' patterns: match names against them.
        let probes = configuration.probes
        _ = probes.interfaces.selects("eth0")
        _ = probes.disks.devices.selects("nvme0n1")
        _ = probes.filesystems.mountPoints.selects("/var/lib/hostmeter")
    }

    /// The fixed overrides won wherever the configuration was accepted with them.
    private static func checkOverrides(_ configuration: AgentConfiguration) {
        check(configuration.intervalSeconds == 60, "HOSTMETER_INTERVAL_SECONDS lost: \(configuration.intervalSeconds)")
        check(configuration.sink.url == environment["HOSTMETER_SINK_URL"], "HOSTMETER_SINK_URL lost")
        check(configuration.log.level == .debug, "HOSTMETER_LOG_LEVEL lost")
        check(configuration.probes.disks.devices.include == ["sd*", "nvme*"], "HOSTMETER_PROBES_DISKS_INCLUDE lost")
        check(configuration.thresholds.map(\.name) == ["cpu_high"], "HOSTMETER_THRESHOLDS lost")
    }

    /// The configuration's rule for ids (`host_id`, `host.user_id`…).
    private static func isIdentifier(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 256 && !id.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    private static func isHTTPURL(_ text: String?, needsHost: Bool) -> Bool {
        guard let text, let url = URL(string: text), ["http", "https"].contains(url.scheme ?? "") else { return false }
        return !needsHost || url.host != nil
    }
}
