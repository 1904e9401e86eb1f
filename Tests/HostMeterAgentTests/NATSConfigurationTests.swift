import Foundation
import HostMeterAgent
import Shipping
import Testing

/// `sink.type: nats` and `sink.nats.*`: what is accepted, and what is refused naming key and line.
@Suite struct NATSConfigurationTests {
    @Test func aNATSSinkIsBuiltFromItsKeys() throws {
        let directory = try ScratchDirectory("nats-config")
        defer { directory.remove() }
        let passwordFile = directory.appendingPathComponent("password")
        try "  pw-1\n".write(to: passwordFile, atomically: true, encoding: .utf8)
        let configuration = try AgentConfiguration.parse(
            """
            host_id: h1
            sink:
              type: nats
              url: nats://127.0.0.1:4222, nats://127.0.0.1:4223
              timeout_seconds: 7
              nats:
                subject: hm.{host_id}.{instance_id}
                stream: USAGE
                user: hostmeter
                password_file: \(passwordFile.path)
                max_in_flight: 64
            """, file: "t.yaml")
        #expect(configuration.sink.type == .nats)
        #expect(configuration.sink.nats.subject.description == "hm.{host_id}.{instance_id}")
        let sink = try #require(try Agent.makeSink(configuration) as? NATSSink)
        #expect(sink.type == "nats")
        #expect(sink.settings.servers == "nats://127.0.0.1:4222, nats://127.0.0.1:4223")
        #expect(sink.settings.password == "pw-1")
        #expect(sink.settings.stream == "USAGE")
        #expect(sink.settings.ackTimeoutSeconds == 7)
        #expect(sink.settings.maxInFlight == 64)
    }

    @Test func theDefaultSubjectNamesOrganisationUserAndInstance() throws {
        let configuration = try AgentConfiguration.parse("sink: {type: nats, url: \"nats://127.0.0.1:4222\"}", file: "t.yaml")
        #expect(configuration.sink.nats.subject.description == "usage.{org_id}.{user_id}.{instance_id}")
    }

    @Test(arguments: [
        ("sink: {type: nats}", "sink.url", "nats:// or tls://"),
        ("sink: {type: nats, url: \"http://127.0.0.1:4222\"}", "sink.url", "nats:// or tls://"),
        ("sink: {type: nats, url: \"nats://127.0.0.1:4222,\"}", "sink.url", "nats:// or tls://"),
        ("sink: {type: nats, url: \"nats://a:1\", nats: {subject: \"usage.>\"}}", "sink.nats.subject", "\">\" is not allowed"),
        ("sink: {type: nats, url: \"nats://a:1\", nats: {subject: \"usage.{vm}\"}}", "sink.nats.subject", "unknown placeholder {vm}"),
        ("sink: {type: nats, url: \"nats://a:1\", nats: {stream: \"a.b\"}}", "sink.nats.stream", "letters, digits"),
        ("sink: {type: nats, url: \"nats://a:1\", nats: {nkey: \"UABC\"}}", "sink.nats.nkey_seed_file", "go together"),
        ("sink: {type: nats, url: \"nats://a:1\", nats: {password_file: /p}}", "sink.nats.user", "needs `user`"),
        ("sink: {type: nats, url: \"nats://a:1\", nats: {max_in_flight: 0}}", "sink.nats.max_in_flight", "between 1 and"),
        ("sink: {type: nats, url: \"nats://a:1\", nats: {queue: x}}", "sink.nats.queue", "unknown key"),
    ])
    func badValuesAreRefusedNamingTheKey(yaml: String, key: String, message: String) {
        #expect {
            try AgentConfiguration.parse(yaml, file: "t.yaml")
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.key == key && error.message.contains(message)
        }
    }
}

/// `sink.type: kafka` and `sink.kafka.*`.
@Suite struct KafkaConfigurationTests {
    @Test func aKafkaSinkIsBuiltFromItsKeys() async throws {
        let configuration = try AgentConfiguration.parse(
            """
            host_id: h1
            sink:
              type: kafka
              timeout_seconds: 12
              kafka:
                brokers: 127.0.0.1:9092, 127.0.0.1:9093
                topic: billing.usage-v1
                properties:
                  compression.type: zstd
                  linger.ms: "20"
            """, file: "t.yaml")
        #expect(configuration.sink.type == .kafka)
        try Agent.checkSinkProperties(configuration)
        let sink = try #require(try Agent.makeSink(configuration) as? KafkaSink)
        #expect(sink.type == "kafka")
        #expect(sink.settings.topic == "billing.usage-v1")
        #expect(sink.settings.deliveryTimeoutSeconds == 12)
        #expect(sink.settings.properties.map(\.0) == ["compression.type", "linger.ms"])
        await sink.shutdown()
    }

    @Test func theSASLPasswordComesFromItsFile() async throws {
        let directory = try ScratchDirectory("kafka-config")
        defer { directory.remove() }
        let file = directory.appendingPathComponent("password")
        try " s3cret\n".write(to: file, atomically: true, encoding: .utf8)
        let configuration = try AgentConfiguration.parse(
            """
            sink:
              type: kafka
              kafka:
                brokers: 127.0.0.1:9092
                sasl_password_file: \(file.path)
                properties: {security.protocol: SASL_PLAINTEXT, sasl.mechanisms: PLAIN, sasl.username: hm}
            """, file: "t.yaml")
        let sink = try #require(try Agent.makeSink(configuration) as? KafkaSink)
        #expect(sink.settings.properties.contains { $0 == ("sasl.password", "s3cret") })
        await sink.shutdown()
        #expect {
            try AgentConfiguration.parse(
                "sink: {type: kafka, kafka: {brokers: \"a:1\", sasl_password_file: /p, properties: {sasl.password: x}}}",
                file: "t.yaml")
        } throws: { error in
            (error as? ConfigurationError)?.key == "sink.kafka.sasl_password_file"
        }
        let missing = try AgentConfiguration.parse(
            "sink: {type: kafka, kafka: {brokers: \"a:1\", sasl_password_file: \(directory.url.path)/none}}", file: "t.yaml")
        #expect {
            try Agent.checkSinkProperties(missing)
        } throws: { error in
            (error as? ConfigurationError)?.key == "sink.kafka.sasl_password_file"
        }
    }

    @Test func aPropertyLibrdkafkaRefusesFailsTheCheckNamingIt() throws {
        let configuration = try AgentConfiguration.parse(
            "sink: {type: kafka, kafka: {brokers: \"127.0.0.1:9092\", properties: {linger.ms: soon}}}", file: "t.yaml")
        #expect {
            try Agent.checkSinkProperties(configuration, configurationPath: "t.yaml")
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.key == "sink.kafka.properties.linger.ms" && error.file == "t.yaml"
        }
    }

    @Test(arguments: [
        ("sink: {type: kafka}", "sink.kafka.brokers", "needs brokers"),
        ("sink: {type: kafka, kafka: {brokers: \"kafka-1\"}}", "sink.kafka.brokers", "host:port"),
        ("sink: {type: kafka, kafka: {brokers: \"a:1,\"}}", "sink.kafka.brokers", "host:port"),
        ("sink: {type: kafka, kafka: {brokers: \"a:1\", topic: \"a/b\"}}", "sink.kafka.topic", "1 to 249"),
        ("sink: {type: kafka, kafka: {brokers: \"a:1\", properties: {acks: \"1\"}}}", "sink.kafka.properties.acks", "set by the sink"),
        (
            "sink: {type: kafka, kafka: {brokers: \"a:1\", properties: {enable.idempotence: \"false\"}}}",
            "sink.kafka.properties.enable.idempotence", "cannot be overridden"
        ),
    ])
    func badValuesAreRefusedNamingTheKey(yaml: String, key: String, message: String) {
        #expect {
            try AgentConfiguration.parse(yaml, file: "t.yaml")
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.key == key && error.message.contains(message)
        }
    }
}

/// A directory of its own under the temporary directory, for a test's secret files.
struct ScratchDirectory {
    let url: URL

    init(_ prefix: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func appendingPathComponent(_ name: String) -> URL { url.appendingPathComponent(name) }

    func remove() { try? FileManager.default.removeItem(at: url) }
}
