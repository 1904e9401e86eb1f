import Foundation
public import Shipping

extension AgentConfiguration {
    public enum SinkType: String, Sendable, CaseIterable { case http, cloudevents, nats, kafka, file, stdout }

    /// `sink:`: where delivered events go and how they are sent there.
    public struct Sink: Sendable, Equatable {
        public var type: SinkType = .file
        public var url: String?
        /// nil: `<state_dir>/events.jsonl`.
        public var path: String?
        public var tokenFile: String?
        public var batchMaxEvents = 500
        public var timeoutSeconds = 30.0
        public var connectTimeoutSeconds = 10.0
        /// A PEM file of CA certificates to trust for https instead of the system's.
        public var caFile: String?
        /// Extra request headers.
        public var headers: [String: String] = [:]
        /// What a CloudEvent's `subject` carries (`cloudevents` only).
        public var subject: CloudEventSubject = .instanceID
        /// Request bodies as they are or gzip (`http` and `cloudevents`).
        public var compression: BodyCompression = .none
        /// The shipper's average send rate cap, events per second; 0: none.
        public var maxEventsPerSecond = 2000
        /// Seconds over which a fleet's hosts spread their sending after a period ends; each host
        /// waits its own offset in it (`FleetPacing`), at most one period.
        public var spreadSeconds = 30
        /// `sink.nats`: the `nats` sink's subject, stream and credentials.
        public var nats = NATS()
        /// `sink.kafka`: the `kafka` sink's brokers, topic and librdkafka properties.
        public var kafka = Kafka()
    }

    /// `sink.kafka:`: where a `kafka` sink produces and librdkafka's other settings.
    public struct Kafka: Sendable, Equatable {
        public var brokers: String?
        public var topic = "hostmeter.usage"
        public var properties: [String: String] = [:]
        /// A file holding `sasl.password`, so that the configuration file holds no secret.
        public var saslPasswordFile: String?
    }

    /// `sink.nats:`: what a `nats` sink publishes to and how it authenticates. The servers are
    /// `sink.url`, the token `sink.token_file`, the CA `sink.ca_file`.
    public struct NATS: Sendable, Equatable {
        public static let defaultSubject = "usage.{org_id}.{user_id}.{instance_id}"
        public var subject = try! NATSSubjectTemplate(defaultSubject)
        public var stream: String?
        public var credentialsFile: String?
        public var nkey: String?
        public var nkeySeedFile: String?
        public var user: String?
        public var passwordFile: String?
        public var maxInFlight = 1000
    }
}

extension AgentConfiguration.Kafka {
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        brokers = try keys["brokers"]?.optionalString()
        if let brokers {
            let valid = brokers.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { broker in
                let parts = broker.trimmingCharacters(in: .whitespaces).split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]) else { return false }
                return (1...65535).contains(port)
            }
            guard valid else {
                throw (keys["brokers"] ?? node.child("brokers")).error("brokers are host:port pairs separated by commas")
            }
        }
        topic = try keys["topic"]?.string(default: topic) ?? topic
        // Kafka's rule for topic names: 1 to 249 of letters, digits, `.`, `_` and `-`.
        guard (1...249).contains(topic.count), topic != ".", topic != "..",
            topic.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })
        else {
            throw (keys["topic"] ?? node.child("topic")).error("a topic is 1 to 249 letters, digits, `.`, `_` and `-`")
        }
        if let properties = keys["properties"] {
            for (name, value) in try properties.mapping(allowed: nil) {
                guard let text = try value.optionalString() else { throw value.error("a librdkafka property needs a string value") }
                guard !KafkaSink.Settings.managedProperties.contains(name) else {
                    throw value.error(
                        "\(name) is set by the sink itself (idempotent producer, acks=all, sink.kafka.brokers, " +
                            "sink.timeout_seconds) and cannot be overridden")
                }
                self.properties[name] = text
            }
        }
        saslPasswordFile = try keys["sasl_password_file"]?.optionalString()
        if saslPasswordFile != nil, self.properties["sasl.password"] != nil {
            throw node.child("sasl_password_file").error("set `sasl_password_file` or `properties.sasl.password`, not both")
        }
    }
}

extension AgentConfiguration.NATS {
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        if let text = try keys["subject"]?.optionalString() {
            do {
                subject = try NATSSubjectTemplate(text)
            } catch {
                throw (keys["subject"] ?? node.child("subject")).error(error.reason)
            }
        }
        stream = try keys["stream"]?.optionalString()
        if let stream, stream.isEmpty || !stream.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) }) {
            throw (keys["stream"] ?? node.child("stream")).error("a stream name is letters, digits, `-` and `_`")
        }
        credentialsFile = try keys["credentials_file"]?.optionalString()
        nkey = try keys["nkey"]?.optionalString()
        nkeySeedFile = try keys["nkey_seed_file"]?.optionalString()
        if (nkey == nil) != (nkeySeedFile == nil) {
            throw node.child(nkey == nil ? "nkey" : "nkey_seed_file").error("`nkey` and `nkey_seed_file` go together")
        }
        if let nkey, !(nkey.hasPrefix("U") && nkey.count == 56) {
            throw (keys["nkey"] ?? node.child("nkey")).error("an NKey user public key is 56 characters starting with U")
        }
        if credentialsFile != nil, nkey != nil {
            throw node.child("credentials_file").error("`credentials_file` and `nkey` exclude each other")
        }
        user = try keys["user"]?.optionalString()
        passwordFile = try keys["password_file"]?.optionalString()
        if passwordFile != nil, user == nil {
            throw node.child("user").error("`password_file` needs `user`")
        }
        maxInFlight = try keys["max_in_flight"]?.int(default: maxInFlight) ?? maxInFlight
    }
}

extension AgentConfiguration.Sink {
    /// The `sink:` section; an http or cloudevents sink needs an http:// or https:// url.
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        type = try keys["type"]?.choice(default: type) ?? type
        url = try keys["url"]?.optionalString()
        path = try keys["path"]?.optionalString()
        tokenFile = try keys["token_file"]?.optionalString()
        batchMaxEvents = try keys["batch_max_events"]?.int(default: batchMaxEvents) ?? batchMaxEvents
        timeoutSeconds = try keys["timeout_seconds"]?.double(default: timeoutSeconds) ?? timeoutSeconds
        connectTimeoutSeconds = try keys["connect_timeout_seconds"]?.double(default: connectTimeoutSeconds)
            ?? connectTimeoutSeconds
        caFile = try keys["ca_file"]?.optionalString()
        if let headers = keys["headers"] {
            for (name, value) in try headers.mapping(allowed: nil) {
                guard let text = try value.optionalString(), !name.isEmpty,
                    name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) })
                else { throw value.error("headers need a token name and a string value") }
                self.headers[name] = text
            }
        }
        subject = try keys["subject"]?.choice(default: subject) ?? subject
        compression = try keys["compression"]?.choice(default: compression) ?? compression
        maxEventsPerSecond = try keys["max_events_per_second"]?.int(default: maxEventsPerSecond) ?? maxEventsPerSecond
        spreadSeconds = try keys["spread_seconds"]?.int(default: spreadSeconds) ?? spreadSeconds
        nats = try AgentConfiguration.NATS(keys["nats"] ?? node.child("nats"))
        kafka = try AgentConfiguration.Kafka(keys["kafka"] ?? node.child("kafka"))
        if type == .kafka, kafka.brokers == nil {
            throw node.child("kafka").child("brokers").error("sink type kafka needs brokers (host:port pairs separated by commas)")
        }
        if type == .nats {
            let servers = (url ?? "").split(separator: ",", omittingEmptySubsequences: false)
            let valid = !servers.isEmpty && servers.allSatisfy { server in
                let text = server.trimmingCharacters(in: .whitespaces)
                guard let parsed = URL(string: text), let host = parsed.host, !host.isEmpty else { return false }
                return ["nats", "tls"].contains(parsed.scheme ?? "")
            }
            guard valid else {
                throw (keys["url"] ?? node.child("url")).error(
                    "sink type nats needs one or more nats:// or tls:// URLs, separated by commas")
            }
        }
        if type == .http || type == .cloudevents {
            guard let url, let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? "") else {
                throw (keys["url"] ?? node.child("url")).error("sink type \(type.rawValue) needs an http:// or https:// url")
            }
        }
    }
}
