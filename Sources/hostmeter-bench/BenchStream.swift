import ArgumentParser
import CNATS
import CRdKafka

/// The JetStream stream a NATS drain run publishes to, made through the NATS C client: deleted
/// if it exists, then added (file storage, one replica), so that each run starts empty.
enum BenchStream {
    static func replace(url: String, name: String, subject: String) throws {
        try withJetStream(url) { jetStream in
            var code = jsErrCode(rawValue: 0)
            _ = js_DeleteStream(jetStream, name, nil, &code)
            var config = jsStreamConfig()
            jsStreamConfig_Init(&config)
            config.Storage = js_FileStorage
            var info: UnsafeMutablePointer<jsStreamInfo>?
            let status = name.withCString { streamName in
                subject.withCString { subjectName -> natsStatus in
                    var subjects: [UnsafePointer<CChar>?] = [subjectName]
                    return subjects.withUnsafeMutableBufferPointer { buffer in
                        config.Name = streamName
                        config.Subjects = buffer.baseAddress
                        config.SubjectsLen = 1
                        return js_AddStream(&info, jetStream, &config, nil, &code)
                    }
                }
            }
            jsStreamInfo_Destroy(info)
            guard status == NATS_OK else {
                throw ValidationError("cannot add stream \(name): \(String(cString: natsStatus_GetText(status))) (\(code.rawValue))")
            }
        }
    }

    /// How many messages the stream holds.
    static func messageCount(url: String, name: String) throws -> UInt64 {
        try withJetStream(url) { jetStream in
            var info: UnsafeMutablePointer<jsStreamInfo>?
            var code = jsErrCode(rawValue: 0)
            let status = js_GetStreamInfo(&info, jetStream, name, nil, &code)
            defer { jsStreamInfo_Destroy(info) }
            guard status == NATS_OK, let info else { throw ValidationError("no stream \(name)") }
            return info.pointee.State.Msgs
        }
    }

    private static func withJetStream<T>(_ url: String, _ body: (OpaquePointer) throws -> T) throws -> T {
        var connection: OpaquePointer?
        let status = natsConnection_ConnectTo(&connection, url)
        guard status == NATS_OK, let connection else {
            throw ValidationError("cannot connect to \(url): \(String(cString: natsStatus_GetText(status)))")
        }
        defer { natsConnection_Destroy(connection) }
        var jetStream: OpaquePointer?
        guard natsConnection_JetStream(&jetStream, connection, nil) == NATS_OK, let jetStream else {
            throw ValidationError("no JetStream at \(url)")
        }
        defer { jsCtx_Destroy(jetStream) }
        return try body(jetStream)
    }
}

/// The records a Kafka topic holds (high less low watermark, summed over its partitions), read
/// through librdkafka: what a drain run checks it delivered.
enum BenchTopic {
    /// The sum of the topic's high watermarks: records ever written (a mock cluster keeps only the
    /// latest of them, so the low watermark moves).
    static func recordCount(brokers: String, topic: String) throws -> Int64 {
        guard let configuration = rd_kafka_conf_new() else { throw ValidationError("no librdkafka configuration") }
        var error = [CChar](repeating: 0, count: 512)
        for (name, value) in [("bootstrap.servers", brokers), ("group.id", "hostmeter-bench-count"), ("log_level", "3")] {
            guard rd_kafka_conf_set(configuration, name, value, &error, error.count) == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(configuration)
                throw ValidationError("librdkafka \(name): \(text(error))")
            }
        }
        guard let client = rd_kafka_new(RD_KAFKA_CONSUMER, configuration, &error, error.count) else {
            rd_kafka_conf_destroy(configuration)
            throw ValidationError("librdkafka: \(text(error))")
        }
        defer { rd_kafka_destroy(client) }
        let handle = rd_kafka_topic_new(client, topic, nil)
        defer { rd_kafka_topic_destroy(handle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        guard rd_kafka_metadata(client, 0, handle, &metadata, 10_000) == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata,
            metadata.pointee.topic_cnt == 1
        else { throw ValidationError("no metadata for topic \(topic)") }
        defer { rd_kafka_metadata_destroy(metadata) }
        let partitions = Int(metadata.pointee.topics[0].partition_cnt)
        var total: Int64 = 0
        for partition in 0..<partitions {
            var low: Int64 = 0
            var high: Int64 = 0
            let code = rd_kafka_query_watermark_offsets(client, topic, Int32(partition), &low, &high, 10_000)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw ValidationError("watermarks of \(topic)[\(partition)]: \(String(cString: rd_kafka_err2str(code)))")
            }
            total += high
        }
        return total
    }

    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
