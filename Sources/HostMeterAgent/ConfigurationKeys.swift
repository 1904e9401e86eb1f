import AgentAPI
import Foundation

/// One configuration key: its dotted path, its default as docs/CONFIG.md shows it, what a SIGHUP
/// does with a change to it, the range a number must fall in, and its line of docs/CONFIG.md's key
/// reference. `AgentConfiguration.keys` is the one list of them: the parser's allowed keys and
/// ranges, the `HOSTMETER_…` variables, the reloader's restart detection and the documentation's
/// table all come from it.
public struct ConfigurationKey: Sendable {
    /// What a SIGHUP does with a changed value, as docs/CONFIG.md's "reload" column says it.
    public enum Reload: String, Sendable {
        /// Applied to the running agent.
        case sighup = "SIGHUP"
        /// Kept at its running value until the agent is restarted.
        case restart
    }

    /// The values a number may take.
    public enum ValueRange: Sendable, Equatable {
        case integer(ClosedRange<Int>)
        case decimal(ClosedRange<Double>)
    }

    public var path: String
    public var defaultValue: String
    public var reload: Reload
    /// nil for a key that is not a number.
    public var range: ValueRange?
    /// The description column of docs/CONFIG.md's table.
    public var summary: String
    /// Whether two configurations differ in this key.
    let differs: @Sendable (AgentConfiguration, AgentConfiguration) -> Bool

    /// Whether a SIGHUP applies the key to the running agent.
    public var reloadable: Bool { reload == .sighup }

    /// `HOSTMETER_` and the path in capitals with `_` for `.`: `sink.url` → `HOSTMETER_SINK_URL`.
    public var environmentName: String {
        "HOSTMETER_" + path.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    /// The key's row in docs/CONFIG.md's table: "| `path` | `default` | reload | summary |".
    public var documentationRow: String { "| `\(path)` | `\(defaultValue)` | \(reload.rawValue) | \(summary) |" }

    /// The range of an integer key; a key of another kind here is a mistake in the parser.
    var integerRange: ClosedRange<Int> {
        guard case .integer(let range) = range else { preconditionFailure("\(path) has no integer range") }
        return range
    }

    /// The range of a decimal key; a key of another kind here is a mistake in the parser.
    var decimalRange: ClosedRange<Double> {
        guard case .decimal(let range) = range else { preconditionFailure("\(path) has no decimal range") }
        return range
    }

    /// A key whose value in a parsed configuration is `value`.
    static func key<Value: Equatable & Sendable>(
        _ path: String, default defaultValue: String, _ reload: Reload, range: ValueRange? = nil,
        value: @escaping @Sendable (AgentConfiguration) -> Value, _ summary: String
    ) -> ConfigurationKey {
        ConfigurationKey(
            path: path, defaultValue: defaultValue, reload: reload, range: range, summary: summary,
            differs: { value($0) != value($1) })
    }
}

extension ConfigurationKey: Equatable {
    public static func == (left: ConfigurationKey, right: ConfigurationKey) -> Bool {
        left.path == right.path && left.defaultValue == right.defaultValue && left.reload == right.reload
            && left.range == right.range && left.summary == right.summary
    }
}

extension AgentConfiguration {
    /// Every key the configuration accepts, in docs/CONFIG.md's order: it documents exactly these
    /// (a test compares its table with their `documentationRow`s), and each can be set from the
    /// environment.
    public static let keys: [ConfigurationKey] = [
        .key("host_id", default: "the hostname", .restart, value: \.hostID,
            "The host's name in every event and event id: 1 to 256 characters, no control characters. Set " +
            "it once and keep it: a new host_id gives new event ids, so a consumer can no longer dedupe " +
            "across the change."),
        .key("interval_seconds", default: "30", .restart, range: .integer(1...3600), value: \.intervalSeconds,
            "Length of one metering period, a whole number of seconds from 1 to 3600: one usage event per " +
            "instance per period."),
        .key("sample_seconds", default: "min(interval_seconds, 5)", .restart, range: .integer(1...3600),
            value: \.sampleSeconds,
            "How often the host is sampled within a period (memory is averaged over the samples): 1 to " +
            "3600 and not longer than `interval_seconds`. Samples fall on wall-clock multiples of it."),
        .key("state_dir", default: "/var/lib/hostmeter", .restart, value: \.stateDirectory,
            "Directory of the SQLite database (`hostmeter.sqlite`: checkpoints, outbox, dead letters, " +
            "API-set threshold rules), the lock file `hostmeter.lock` and, by default, the file sink's " +
            "`events.jsonl`. Not empty; created if missing, with mode 0700 (missing parents 0755) " +
            "whatever the umask; an existing directory keeps its mode. One agent per directory: a second " +
            "one exits 2 (\"another hostmeter … is running with this state directory\"). A relative path is " +
            "relative to the agent's working directory."),
        .key("identity.key_file", default: "null", .restart, value: \.identity.keyFile,
            "The agent's Ed25519 identity key (PKCS #8 PEM), which signs its usage commitments; `null`: " +
            "`identity.pem` in `state_dir`. Made at the first start with mode 0600 and kept for life " +
            "(`hostmeter identity` and `GET /identity` show its public half). A key file that its group or " +
            "others may read, a symbolic link or a file of another owner is refused (exit 2)."),
        .key("commitments.max_events", default: "1000", .restart, range: .integer(1...1_000_000),
            value: \.commitments.maxEvents,
            "With `schema_version: \"1.1\"`: a signed `usage_commitment` is made once this many chained " +
            "events wait for one, 1 to 1000000 (docs/VERIFYING.md)."),
        .key("commitments.max_seconds", default: "300", .restart, range: .integer(10...86_400),
            value: \.commitments.maxSeconds,
            "With `schema_version: \"1.1\"`: a commitment is made at the first step this many seconds " +
            "after the last one, 10 to 86400, when any chained event waits for one."),
        .key("instance_sample_seconds", default: "min(interval_seconds, 15)", .restart, range: .integer(1...3600),
            value: \.instanceSampleSeconds,
            "How often the instances of `instances_dir` and the API are probed (their cgroups, taps and " +
            "disks): a multiple of `sample_seconds`, not longer than `interval_seconds` (the default is " +
            "rounded down to a multiple of `sample_seconds`). Counters are exact whatever the cadence; " +
            "memory is averaged over these samples, and an instance that stops is billed up to its last " +
            "one. Probing 1,000 VMs costs about 40 ms of CPU, so twice per 30 s period keeps the agent " +
            "under 1 % of a core."),
        .key("instances_dir", default: "/etc/hostmeter/instances.d", .restart, value: \.instancesDirectory,
            "Directory of instance manifests: one `*.yaml`, `*.yml` or `*.json` file per metered instance " +
            "(VM), re-read each time instances are probed (`instance_sample_seconds`), so an added, " +
            "changed or removed file takes effect within one probe. A missing directory holds no " +
            "instances. Instances can also be registered with `PUT /instances/{id}` (docs/API.md); see " +
            "[Instances](#instances)."),
        .key("max_instances", default: "4096", .restart, range: .integer(1...AgentConfiguration.maxInstancesLimit),
            value: \.maxInstances,
            "The most instances metered besides the host, manifest files and `PUT /instances/{id}` " +
            "together: 1 to 65536. Each costs about 9 kB of memory and 33 µs of CPU per probe. Past it, a " +
            "`PUT` of a new id answers 409 naming the limit and this key, and the files beyond it (those " +
            "already metered keep their place; new ones are taken in file-name order) are refused naming " +
            "the file. Instances stored over the API beyond a limit lowered since all stay metered (a " +
            "warning is logged); new ones are refused until fewer remain."),
        .key("schema_version", default: "\"1.0\"", .restart, value: \.schemaVersion,
            "UsageEvent schema version to emit: `1.0` (`docs/schema/usage-event-1.0.json`) or `1.1`, which " +
            "adds each instance's hash chain (`seq`, `prev_hash`, `hash`; `docs/schema/usage-event-1.1.json`, " +
            "docs/VERIFYING.md). 1.1 events are never merged when the outbox nears `outbox.max_bytes`."),
        .key("api.listen", default: "127.0.0.1:9780", .restart, value: \.api.listen,
            "`host:port` (or `[v6-address]:port`) of the local HTTP API (docs/API.md); port 0 to 65535, 0 " +
            "picks a free port (logged as `msg=\"API listening\" api.port=N`); an empty host is `0.0.0.0`. " +
            "Beyond loopback (anything but 127.0.0.0/8, `::1` or `localhost`) it needs `api.tokens_file`, " +
            "or `api.allow_remote_without_tokens: true`: otherwise the configuration is refused (exit 2). " +
            "See docs/SECURITY.md."),
        .key("api.tokens_file", default: "null", .restart, value: \.api.tokensFile,
            "YAML or JSON file mapping a token's hex SHA-256 to a role: `admin`, `metrics` (`/health` and " +
            "`/metrics` only, for Prometheus) or `user:<user_id>` (docs/API.md). It must hold at least " +
            "one valid token, else the configuration is refused naming the file. `null`: no tokens; reads " +
            "are open to whoever reaches `api.listen` (loopback by default) and every change " +
            "(`PUT`/`DELETE` of instances and rules) is refused with 403. Read at start only."),
        .key("api.auth_health_and_metrics", default: "true", .restart, value: \.api.authHealthAndMetrics,
            "`true` or `false`: with tokens configured, whether `/health` and `/metrics` need an `admin` " +
            "or `metrics` token. They show every user's figures (`user_id` labels), so they are protected " +
            "by default; `false` opens them to whoever reaches `api.listen` (for a scraper that cannot " +
            "send a bearer token)."),
        .key("api.allow_remote_without_tokens", default: "false", .restart, value: \.api.allowRemoteWithoutTokens,
            "`true` or `false`: allow `api.listen` beyond loopback without `api.tokens_file`. Anyone who " +
            "reaches the address can then read every user's usage (changes stay refused); only for a " +
            "network you trust completely."),
        .key("api.max_connections_per_peer", default: "32", .restart, range: .integer(1...APILimits.defaultMaxConnections),
            value: \.api.maxConnectionsPerPeer,
            "Connections one peer (an IPv4 address, or an IPv6 /64) may hold open, 1 to 256 (the API " +
            "holds at most 256 in all). A connection beyond it takes the place of that peer's connection " +
            "that has waited longest on its client (idle, or still sending its request), or is closed at " +
            "once when all of them are being answered; counted in " +
            "`hostmeter_api_connections_closed_total{reason=\"peer_limit\"}`. Every client on the agent's " +
            "own host is 127.0.0.1. See docs/API.md, \"Connections\"."),
        .key("api.request_timeout_seconds", default: "10", .restart, range: .decimal(0.1...600),
            value: \.api.requestTimeoutSeconds,
            "Seconds a client has to send a whole request, head and body, from when it connected or its " +
            "previous answer began, 0.1 to 600. A request cut there is answered 408 and its connection " +
            "closed; an idle kept-alive connection, a stalled TLS handshake and a client that does not " +
            "read its answer are closed after as long. Counted in " +
            "`hostmeter_api_connections_closed_total{reason=\"request_timeout\"}`."),
        .key("api.tls.certificate_file", default: "null", .restart, value: \.api.tls.certificateFile,
            "PEM file of the API's certificate, then any intermediates. With `api.tls.key_file` the API " +
            "speaks HTTPS only (TLS 1.2 and 1.3); set both whenever `api.listen` is beyond loopback. The " +
            "files are read and checked at start and by `hostmeter config check`: one that cannot be read " +
            "or is not PEM, or a key that is not the certificate's, exits 2 naming the key and the file."),
        .key("api.tls.key_file", default: "null", .restart, value: \.api.tls.keyFile,
            "PEM file of the certificate's private key, unencrypted; readable by the agent's user only. " +
            "Required with `api.tls.certificate_file`."),
        .key("api.tls.client_ca_file", default: "null", .restart, value: \.api.tls.clientCAFile,
            "PEM file of CA certificates for mutual TLS: set, a client must present a certificate issued " +
            "by one of them or its handshake fails. Needs `api.tls.certificate_file`. Tokens still decide " +
            "what a client may do."),
        .key("host.enabled", default: "true", .restart, value: \.host.enabled,
            "Meter the whole host as one instance (host mode). Runs beside the instances of " +
            "`instances_dir`; `false` meters the instances only."),
        .key("host.instance_id", default: "host_id", .restart, value: \.host.instanceID,
            "Instance id of the host's own events (host mode: the whole host is one metered instance); " +
            "same rules as `host_id`."),
        .key("host.user_id", default: "operator", .restart, value: \.host.userID,
            "Who is billed for the host instance; 1 to 256 characters, no control characters."),
        .key("host.org_id", default: "null", .restart, value: \.host.orgID,
            "Optional organisation id carried in the host's events; same rules as `host.user_id`."),
        .key("sink.type", default: "file", .sighup, value: \.sink.type,
            "Where events go: `http` (JSON array batches), `cloudevents` (CloudEvents 1.0 batches), " +
            "`nats` (NATS JetStream, a message per event; `sink.nats.*`), `kafka` (a Kafka topic, a record " +
            "per event; `sink.kafka.*`), `file` (JSON lines, fsynced per batch) or `stdout` (JSON lines)."),
        .key("sink.url", default: "null", .sighup, value: \.sink.url,
            "The consumer's endpoint; required for `http` and `cloudevents`, and must be an `http://` or " +
            "`https://` URL. For `nats`, the servers: one or more `nats://` or `tls://` URLs separated by " +
            "commas (the client fails over between them)."),
        .key("sink.path", default: "<state_dir>/events.jsonl", .sighup, value: \.sink.path,
            "The `file` sink's file."),
        .key("sink.token_file", default: "null", .sighup, value: \.sink.tokenFile,
            "File holding the bearer token sent to an `http` or `cloudevents` consumer, or the `nats` " +
            "server's authorization token (surrounding " +
            "whitespace trimmed). Read at start and when a reload changes a `sink` key; a rotated token " +
            "in an unchanged configuration needs a restart."),
        .key("sink.batch_max_events", default: "500", .restart, range: .integer(1...100_000),
            value: \.sink.batchMaxEvents,
            "Most events in one delivery, 1 to 100000."),
        .key("sink.timeout_seconds", default: "30", .sighup, range: .decimal(0.1...3600),
            value: \.sink.timeoutSeconds,
            "Seconds one request may take before it counts as failed and is retried, 0.1 to 3600; for " +
            "`nats`, how long a batch waits for its PubAcks; for `kafka`, how long a record may take to be " +
            "delivered, librdkafka's retries included (`message.timeout.ms`)."),
        .key("sink.connect_timeout_seconds", default: "10", .sighup, range: .decimal(0.1...600),
            value: \.sink.connectTimeoutSeconds,
            "Seconds to establish a connection, 0.1 to 600."),
        .key("sink.ca_file", default: "null", .sighup, value: \.sink.caFile,
            "PEM file of CA certificates to trust for `https` instead of the system's; for `nats`, set, the " +
            "connection is TLS and trusts these CAs; for `kafka`, librdkafka's `ssl.ca.location` (TLS itself " +
            "is `security.protocol` in `sink.kafka.properties`)."),
        .key("sink.headers", default: "{}", .sighup, value: \.sink.headers,
            "Extra request headers, a mapping of name to string value; names are letters, digits, `-` and " +
            "`_`."),
        .key("sink.subject", default: "instance_id", .sighup, value: \.sink.subject,
            "What a CloudEvent's `subject` carries, `cloudevents` only: `instance_id`, `user_id` or " +
            "`org_id` (OpenMeter meters usage by subject). An event without that value (no `org_id`) is " +
            "dead-lettered with reason `no_subject`, never sent under another subject."),
        .key("sink.compression", default: "none", .sighup, value: \.sink.compression,
            "`gzip` sends `http` and `cloudevents` request bodies gzip-compressed with " +
            "`Content-Encoding: gzip`; `none` sends them as they are."),
        .key("sink.spread_seconds", default: "30", .restart, range: .integer(0...3600),
            value: \.sink.spreadSeconds,
            "Seconds after a period ends over which a fleet's hosts spread their sending, 0 to 3600 and at " +
            "most `interval_seconds`: each host waits its own fixed offset in it, from a hash of `host_id`, " +
            "so hosts that close periods together do not all send in the same second. Retries and a " +
            "backlog are not held; 0 sends at once."),
        .key("sink.max_events_per_second", default: "2000", .restart, range: .integer(0...1_000_000),
            value: \.sink.maxEventsPerSecond,
            "The most events a second the shipper sends on average, 0 to 1000000 (0: no cap). A period's " +
            "events go at once (up to this many, or one batch if that is more, and one batch beyond); a " +
            "backlog after an outage drains at this rate, so a consumer coming back gets a ramp, not a wall."),
        .key("sink.nats.subject", default: AgentConfiguration.NATS.defaultSubject, .sighup, value: \.sink.nats.subject,
            "The subject of each event's message, `nats` only: dot-separated tokens of letters, digits, `-` " +
            "and `_`, and the placeholders `{host_id}`, `{instance_id}`, `{user_id}`, `{org_id}` and " +
            "`{event_type}`. A value's other bytes are written `%XX` (an id with a dot stays one token) and " +
            "an absent one `_`. A JetStream stream must listen on the subjects (e.g. `usage.>`)."),
        .key("sink.nats.stream", default: "null", .sighup, value: \.sink.nats.stream,
            "The stream that must store the events (`Nats-Expected-Stream`): a PubAck from another stream " +
            "is a refusal, retried and shown by `/health`. `null`: whichever stream listens on the subject."),
        .key("sink.nats.credentials_file", default: "null", .sighup, value: \.sink.nats.credentialsFile,
            "A NATS `.creds` file (user JWT and NKey seed) to authenticate with."),
        .key("sink.nats.nkey", default: "null", .sighup, value: \.sink.nats.nkey,
            "An NKey user public key (56 characters, `U…`) to authenticate with; needs " +
            "`sink.nats.nkey_seed_file`."),
        .key("sink.nats.nkey_seed_file", default: "null", .sighup, value: \.sink.nats.nkeySeedFile,
            "File holding the seed (`SU…`) of `sink.nats.nkey`; readable by the agent's user only."),
        .key("sink.nats.user", default: "null", .sighup, value: \.sink.nats.user,
            "User name to authenticate with, with `sink.nats.password_file`."),
        .key("sink.nats.password_file", default: "null", .sighup, value: \.sink.nats.passwordFile,
            "File holding `sink.nats.user`'s password (surrounding whitespace trimmed)."),
        .key("sink.nats.max_in_flight", default: "1000", .sighup, range: .integer(1...1_000_000),
            value: \.sink.nats.maxInFlight,
            "The most messages published and awaiting their PubAck at a time, 1 to 1000000; a batch " +
            "larger than this publishes the rest as acknowledgements come back."),
        .key("sink.kafka.brokers", default: "null", .sighup, value: \.sink.kafka.brokers,
            "The Kafka cluster's bootstrap brokers, `host:port` pairs separated by commas; required for `kafka`."),
        .key("sink.kafka.topic", default: "hostmeter.usage", .sighup, value: \.sink.kafka.topic,
            "The topic each event is produced to, as a record keyed by its instance id (one partition per " +
            "instance, in order): 1 to 249 letters, digits, `.`, `_` and `-`. The agent does not create it."),
        .key("sink.kafka.properties", default: "{}", .sighup, value: \.sink.kafka.properties,
            "librdkafka properties passed through, a mapping of name to string value: `security.protocol`, " +
            "`sasl.mechanisms`, `sasl.username`, `sasl.password`, `ssl.*`, `compression.type`, `linger.ms`, " +
            "…; one librdkafka refuses is refused at start naming it. The sink's own (`enable.idempotence`, " +
            "`acks`, `bootstrap.servers`, `message.timeout.ms`, `client.id`) cannot be set here."),
        .key("sink.kafka.sasl_password_file", default: "null", .sighup, value: \.sink.kafka.saslPasswordFile,
            "File holding librdkafka's `sasl.password` (surrounding whitespace trimmed), so that the " +
            "configuration file holds no secret; readable by the agent's user only. Not with " +
            "`sasl.password` in `sink.kafka.properties`."),
        .key("retry.base_seconds", default: "1", .restart, range: .decimal(0.001...3600), value: \.retry.baseSeconds,
            "A failed delivery waits a random time from 0 to min(cap, base × 2^attempt) seconds (full " +
            "jitter); base is 0.001 to 3600. A consumer's `Retry-After` is honoured, up to the cap."),
        .key("retry.cap_seconds", default: "300", .restart, range: .decimal(0.001...86400), value: \.retry.capSeconds,
            "The most one retry waits, 0.001 to 86400 and not below `retry.base_seconds`."),
        .key("circuit_breaker.failure_threshold", default: "5", .restart, range: .integer(1...1000),
            value: \.circuitBreaker.failureThreshold,
            "Failed deliveries in a row that open the circuit breaker (stop sending), 1 to 1000."),
        .key("circuit_breaker.open_seconds", default: "30", .restart, range: .decimal(0.01...86400),
            value: \.circuitBreaker.openSeconds,
            "How long an open breaker waits before one probe delivery, 0.01 to 86400 seconds, each time " +
            "jittered by ±20 % so that a fleet does not probe in step. A probe that fails opens it again " +
            "for twice as long, up to 16 × this value, so after a long outage deliveries resume at most " +
            "that long after the consumer is back (8 minutes with the default)."),
        .key("outbox.max_bytes", default: "1073741824", .restart, range: .integer(1_048_576...Int.max),
            value: \.outbox.maxBytes,
            "Bound on the database on disk in bytes, at least 1048576 (1 MiB). Near it, gaps and " +
            "baselines no undelivered usage needs are pruned and old pending events of one instance are " +
            "merged into longer periods; nothing billable is dropped. Dead letters are kept and count " +
            "against it: past a tenth of it `/health` is degraded."),
        .key("thresholds", default: "[]", .sighup, value: \.thresholds,
            "Threshold rules (see \"Threshold rules\" below). A rule set put over the API wins over this " +
            "one until `DELETE /thresholds`."),
        .key("alerting.alertmanager_url", default: "null", .restart, value: \.alerting.alertmanagerURL,
            "Alertmanager to tell about threshold alerts (its v2 API), an `http://` or `https://` URL " +
            "with a host, e.g. `http://127.0.0.1:9093`. Deliveries use `retry.*` and `circuit_breaker.*`. " +
            "`null`: none; alerts still go to the sink as ThresholdEvents."),
        .key("gpu.enabled", default: "true", .restart, value: \.gpu.enabled,
            "`true` or `false`: meter NVIDIA GPUs through NVML when the library is present (docs/GPU.md). " +
            "Without a driver the agent logs `no NVML: GPUs are not metered` once and runs on."),
        .key("gpu.nvml_library", default: "libnvidia-ml.so.1", .restart, value: \.gpu.nvmlLibrary,
            "The NVML library to `dlopen`: a file name the dynamic linker finds, or a path."),
        .key("log.level", default: "info", .sighup, value: \.log.level,
            "`trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`. `debug` adds a line " +
            "per closed period."),
        .key("log.format", default: "logfmt", .sighup, value: \.log.format,
            "Log lines on stderr (the journal under systemd): `logfmt` (`ts=… level=info msg=\"…\" " +
            "key=value`) or `json` (one JSON object a line)."),
        .key("probes.proc_root", default: "/proc", .restart, value: \.probes.procRoot,
            "Where procfs is mounted (e.g. `/host/proc` in a container)."),
        .key("probes.sys_root", default: "/sys", .restart, value: \.probes.sysRoot,
            "Where sysfs is mounted."),
        .key("probes.rootfs", default: "/", .restart, value: \.probes.rootfs,
            "The host's root as the agent sees it; mount points are measured under it."),
        .key("probes.collectors", default: "all", .restart, value: \.probes.collectors,
            "A list of the collectors to run, from `boot`, `cpu`, `memory`, `disk`, `filesystem`, " +
            "`network`, `load`, `uptime`; `null`: all of them."),
        .key("probes.disks.whole_disks_only", default: "true", .restart, value: \.probes.disks.wholeDisksOnly,
            "`true` or `false`: meter whole disks only, not their partitions (whose IO the disk already " +
            "counts)."),
        .key("probes.disks.include", default: "[]", .restart, value: \.probes.disks.devices.include,
            "Disk name globs (fnmatch: `*`, `?`, `[…]`) to meter; empty: all that are not excluded."),
        .key("probes.disks.exclude", default: "loop*, ram*, zram*, fd*, sr*, nbd*, dm-*, md*", .restart,
            value: \.probes.disks.devices.exclude,
            "Disk name globs to leave out: devices with no IO of their own to bill, or stacked on other " +
            "disks. Setting the key replaces the whole list."),
        .key("probes.interfaces.include", default: "[]", .restart, value: \.probes.interfaces.include,
            "Network interface globs to meter; empty: all that are not excluded."),
        .key("probes.interfaces.exclude", default: "lo", .restart, value: \.probes.interfaces.exclude,
            "Interface globs to leave out (loopback traffic never leaves the host). Setting the key " +
            "replaces the whole list."),
        .key("probes.filesystems.exclude_types", default: "pseudo, memory, overlay and network types", .restart,
            value: \.probes.filesystems.excludedTypes,
            "Filesystem types not metered as storage: pseudo and memory filesystems (`proc`, `sysfs`, " +
            "`tmpfs`, `cgroup2`, …), `overlay` and `squashfs` (counted on the filesystem below) and " +
            "network filesystems (`nfs`, `nfs4`, `cifs`, `ceph`, `9p`, `virtiofs`, …), whose statvfs can " +
            "hang. Setting the key replaces the whole list."),
        .key("probes.filesystems.include_mount_points", default: "[]", .restart,
            value: \.probes.filesystems.mountPoints.include,
            "Mount point globs to meter (`*` also matches `/`); empty: all that are not excluded."),
        .key(
            "probes.filesystems.exclude_mount_points",
            default: "[/proc/*, /sys/*, /dev/*, /run/credentials/*, /var/lib/docker/*, /var/lib/containers/storage/*, /var/lib/kubelet/pods/*]",
            .restart, value: \.probes.filesystems.mountPoints.exclude,
            "Mount point globs to leave out (container and pseudo filesystems' mount points by default); " +
            "setting the key replaces that list."),
    ]

    /// The keys by path.
    static let keysByPath = Dictionary(uniqueKeysWithValues: keys.map { ($0.path, $0) })

    /// The key at `path`; one the table lacks is a mistake in the parser.
    static func key(_ path: String) -> ConfigurationKey {
        guard let key = keysByPath[path] else { preconditionFailure("no configuration key \(path)") }
        return key
    }

    /// The names a mapping may hold, by the mapping's path ("" for the top level, "api.tls" for
    /// that section): every key's path contributes each of its components to its parent's set.
    static let sections: [String: Set<String>] = {
        var sections: [String: Set<String>] = [:]
        for key in keys {
            let components = key.path.split(separator: ".").map(String.init)
            for (depth, name) in components.enumerated() {
                sections[components[..<depth].joined(separator: "."), default: []].insert(name)
            }
        }
        return sections
    }()

    /// The names the section at `path` may hold; a path that is no section is a mistake in the parser.
    static func keyNames(in path: String) -> Set<String> {
        guard let names = sections[path] else { preconditionFailure("no configuration section \(path)") }
        return names
    }

    /// The configuration keys that changed from `old` to `new` and apply only after a restart.
    static func restartOnlyChanges(_ old: AgentConfiguration, _ new: AgentConfiguration) -> [String] {
        keys.filter { !$0.reloadable && $0.differs(old, new) }.map(\.path)
    }
}
