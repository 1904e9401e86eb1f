import CNATS
public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Debian's `nats-server` as a child process on 127.0.0.1 with JetStream, alone or as one node of
/// a cluster, for the tests of the `nats` sink. Its store and configuration live in `directory`,
/// so `kill9()` then `start()` brings the same node back with what it had stored. A node still
/// running when the object goes away is killed.
public final class NATSServer: @unchecked Sendable {
    public let name: String
    public let clientPort: Int
    public let clusterPort: Int?
    public let directory: URL
    public var url: String { "nats://127.0.0.1:\(clientPort)" }
    private var process: Process?

    /// - Parameters:
    ///   - routes: the cluster ports of the other nodes; with `clusterPort`, the node joins them.
    ///   - extraConfig: more of nats-server's configuration (`authorization { … }`, `tls { … }`).
    public init(
        directory: URL, name: String = "n1", clientPort: Int? = nil, clusterPort: Int? = nil, routes: [Int] = [],
        extraConfig: String = ""
    ) throws {
        self.name = name
        self.directory = directory
        self.clientPort = try clientPort ?? freeLoopbackPort()
        self.clusterPort = clusterPort
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = """
            server_name: \(name)
            listen: 127.0.0.1:\(self.clientPort)
            jetstream { store_dir: "\(directory.appendingPathComponent("js").path)" }

            """
        if let clusterPort {
            let routeList = routes.map { "nats-route://127.0.0.1:\($0)" }.joined(separator: ", ")
            config += "cluster { name: hostmeter-test, listen: 127.0.0.1:\(clusterPort), routes: [\(routeList)] }\n"
        }
        config += extraConfig
        try config.write(to: directory.appendingPathComponent("nats.conf"), atomically: true, encoding: .utf8)
    }

    deinit { kill9() }

    public var isRunning: Bool { process?.isRunning ?? false }

    /// Starts the node and waits until it takes connections (at most 10 s).
    public func start() throws {
        let process = Process()
        process.executableURL = try Self.executable()
        process.arguments = ["-c", directory.appendingPathComponent("nats.conf").path]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let log = directory.appendingPathComponent("server.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardError = handle
        try process.run()
        try? handle.close()
        self.process = process
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if canConnect(port: clientPort) { return }
            guard process.isRunning else { break }
            usleep(20_000)
        }
        throw NATSTestError("nats-server \(name) did not start: \(serverLog.suffix(2000))")
    }

    /// SIGKILL, and waits for the process to end.
    public func kill9() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public var serverLog: String {
        (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
    }

    static func executable() throws -> URL {
        for path in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"] where FileManager.default.isExecutableFile(atPath: path) {
            return URL(fileURLWithPath: path)
        }
        throw NATSTestError("nats-server is not installed (apt-get install nats-server; scripts/deps.sh --test does)")
    }
}

/// Three `nats-server` nodes on loopback that form one JetStream cluster.
public final class NATSCluster: @unchecked Sendable {
    public let nodes: [NATSServer]
    /// Every node's client URL, separated by commas: what `sink.url` takes.
    public var urls: String { nodes.map(\.url).joined(separator: ",") }

    public init(directory: URL, size: Int = 3) throws {
        let clusterPorts = try (0..<size).map { _ in try freeLoopbackPort() }
        nodes = try (0..<size).map { index in
            try NATSServer(
                directory: directory.appendingPathComponent("n\(index + 1)"), name: "n\(index + 1)",
                clusterPort: clusterPorts[index], routes: clusterPorts.enumerated().filter { $0.offset != index }.map(\.element))
        }
    }

    public func start() throws {
        for node in nodes { try node.start() }
    }
}

public struct NATSTestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A message read back from a stream.
public struct StoredMessage: Sendable {
    public var sequence: UInt64
    public var subject: String
    public var messageID: String?
    public var headers: [String: String]
    public var data: Data
}

/// A client of the test's own, through the same C library: creates streams and reads them back.
public final class JetStreamClient: @unchecked Sendable {
    private let connection: OpaquePointer
    private let jetStream: OpaquePointer

    /// Connects to `urls` (comma-separated), trying for up to `within` seconds.
    public init(
        urls: String, token: String? = nil, user: String? = nil, password: String? = nil, caFile: String? = nil,
        nkey: String? = nil, nkeySeedFile: String? = nil, credentialsFile: String? = nil, within: Double = 15
    ) throws {
        var options: OpaquePointer?
        guard natsOptions_Create(&options) == NATS_OK, let options else { throw NATSTestError("natsOptions_Create") }
        defer { natsOptions_Destroy(options) }
        let servers = urls.split(separator: ",").map { strdup(String($0)) }
        defer { servers.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = servers.map { $0.map { UnsafePointer($0) } }
        _ = pointers.withUnsafeMutableBufferPointer { natsOptions_SetServers(options, $0.baseAddress, Int32($0.count)) }
        if let token { natsOptions_SetToken(options, token) }
        if let user { natsOptions_SetUserInfo(options, user, password) }
        if let nkey, let nkeySeedFile { natsOptions_SetNKeyFromSeed(options, nkey, nkeySeedFile) }
        if let credentialsFile { natsOptions_SetUserCredentialsFromFiles(options, credentialsFile, nil) }
        if let caFile {
            natsOptions_SetSecure(options, true)
            natsOptions_LoadCATrustedCertificates(options, caFile)
        }
        natsOptions_SetMaxReconnect(options, -1)
        natsOptions_SetReconnectWait(options, 100)
        let deadline = Date().addingTimeInterval(within)
        var connection: OpaquePointer?
        var status = natsConnection_Connect(&connection, options)
        while status != NATS_OK, Date() < deadline {
            usleep(100_000)
            status = natsConnection_Connect(&connection, options)
        }
        guard status == NATS_OK, let connection else {
            throw NATSTestError("cannot connect to \(urls): \(String(cString: natsStatus_GetText(status)))")
        }
        var jsOptions = jsOptions()
        jsOptions_Init(&jsOptions)
        jsOptions.Wait = 5000
        var jetStream: OpaquePointer?
        guard natsConnection_JetStream(&jetStream, connection, &jsOptions) == NATS_OK, let jetStream else {
            natsConnection_Destroy(connection)
            throw NATSTestError("no JetStream context")
        }
        self.connection = connection
        self.jetStream = jetStream
    }

    deinit {
        jsCtx_Destroy(jetStream)
        natsConnection_Destroy(connection)
    }

    /// Adds a file-stored stream on `subjects`, retrying for up to `within` seconds while a
    /// cluster elects its meta leader.
    public func addStream(
        _ name: String, subjects: [String], replicas: Int = 1, maxMessageSize: Int32 = -1, within: Double = 30
    ) throws {
        let deadline = Date().addingTimeInterval(within)
        var last = ""
        repeat {
            var config = jsStreamConfig()
            jsStreamConfig_Init(&config)
            config.Replicas = Int64(replicas)
            config.MaxMsgSize = maxMessageSize
            config.Storage = js_FileStorage
            let subjectCopies = subjects.map { strdup($0) }
            defer { subjectCopies.forEach { free($0) } }
            var subjectPointers: [UnsafePointer<CChar>?] = subjectCopies.map { $0.map { UnsafePointer($0) } }
            let (status, code) = name.withCString { streamName -> (natsStatus, jsErrCode) in
                subjectPointers.withUnsafeMutableBufferPointer { buffer -> (natsStatus, jsErrCode) in
                    config.Name = streamName
                    config.Subjects = buffer.baseAddress
                    config.SubjectsLen = Int32(buffer.count)
                    var info: UnsafeMutablePointer<jsStreamInfo>?
                    var code = jsErrCode(rawValue: 0)
                    let status = js_AddStream(&info, jetStream, &config, nil, &code)
                    jsStreamInfo_Destroy(info)
                    return (status, code)
                }
            }
            if status == NATS_OK { return }
            last = "\(String(cString: natsStatus_GetText(status))) (err_code \(code.rawValue))"
            usleep(200_000)
        } while Date() < deadline
        throw NATSTestError("cannot add stream \(name): \(last)")
    }

    /// The stream's last sequence number.
    public func lastSequence(_ stream: String) throws -> UInt64 {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(rawValue: 0)
        let status = js_GetStreamInfo(&info, jetStream, stream, nil, &code)
        defer { jsStreamInfo_Destroy(info) }
        guard status == NATS_OK, let info else {
            throw NATSTestError("stream info \(stream): \(String(cString: natsStatus_GetText(status))) (err_code \(code.rawValue))")
        }
        return info.pointee.State.LastSeq
    }

    /// Every message of `stream`, in order, read one by one with direct gets.
    public func messages(_ stream: String) throws -> [StoredMessage] {
        let last = try lastSequence(stream)
        guard last > 0 else { return [] }
        var messages: [StoredMessage] = []
        for sequence in 1...last {
            var message: OpaquePointer?
            var code = jsErrCode(rawValue: 0)
            let status = js_GetMsg(&message, jetStream, stream, sequence, nil, &code)
            defer { natsMsg_Destroy(message) }
            // A sequence the stream no longer has (deleted) is skipped; nothing here deletes.
            guard status == NATS_OK, let message else {
                throw NATSTestError("get \(stream) #\(sequence): \(String(cString: natsStatus_GetText(status)))")
            }
            var headers: [String: String] = [:]
            var keys: UnsafeMutablePointer<UnsafePointer<CChar>?>?
            var count: Int32 = 0
            if natsMsgHeader_Keys(message, &keys, &count) == NATS_OK, let keys {
                for index in 0..<Int(count) {
                    guard let key = keys[index] else { continue }
                    var value: UnsafePointer<CChar>?
                    if natsMsgHeader_Get(message, key, &value) == NATS_OK, let value {
                        headers[String(cString: key)] = String(cString: value)
                    }
                }
                free(keys)
            }
            let length = Int(natsMsg_GetDataLength(message))
            let data = natsMsg_GetData(message).map { Data(bytes: $0, count: length) } ?? Data()
            messages.append(
                StoredMessage(
                    sequence: sequence, subject: String(cString: natsMsg_GetSubject(message)),
                    messageID: headers["Nats-Msg-Id"], headers: headers, data: data))
        }
        return messages
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick, then closed).
public func freeLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw NATSTestError("socket: \(errno)") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress -> Int32 in
            guard bind(descriptor, socketAddress, length) == 0 else { return -1 }
            return getsockname(descriptor, socketAddress, &length)
        }
    }
    guard bound == 0 else { throw NATSTestError("bind: \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func canConnect(port: Int) -> Bool {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}
