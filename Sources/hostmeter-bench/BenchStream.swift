import ArgumentParser
import CNATS

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
