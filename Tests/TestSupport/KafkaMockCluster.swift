public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// librdkafka's mock cluster (three brokers speaking the Kafka protocol on loopback ports) with one
/// topic, held by `scripts/kafka/kafka_mock_cluster.c`, which this helper builds with `cc` against
/// Debian's librdkafka (once per test process) and drives over its stdin: inject request errors,
/// move a partition's leader, take brokers down, and read the topic back.
public final class KafkaMockCluster: @unchecked Sendable {
    /// A record read back from the topic.
    public struct Record: Sendable {
        public var partition: Int
        public var offset: Int
        public var key: String
        public var headers: [String: String]
        /// The record's value: the event's JSON.
        public var value: Data
    }

    public let topic: String
    public let partitions: Int
    /// `bootstrap.servers` for the cluster.
    public let bootstraps: String
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer = Data()

    public init(brokers: Int = 3, topic: String = "usage", partitions: Int = 4, replication: Int = 3) throws {
        self.topic = topic
        self.partitions = partitions
        process.executableURL = try Self.helper()
        process.arguments = [String(brokers), topic, String(partitions), String(replication)]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let first = try Self.readLine(from: output.fileHandleForReading, buffer: &buffer, within: 20)
        guard let object = try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any],
            let bootstraps = object["bootstraps"] as? String
        else { throw NATSTestError("kafka_mock_cluster said: \(first)") }
        self.bootstraps = bootstraps
    }

    deinit {
        try? input.fileHandleForWriting.close()
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// The next `count` Produce requests (API key 0) fail with `errors`, in order (librdkafka's
    /// error codes: 6 NOT_LEADER_OR_FOLLOWER, 7 REQUEST_TIMED_OUT, 19 NOT_ENOUGH_REPLICAS, …).
    public func failProduceRequests(_ errors: [Int]) throws {
        try command("errors 0 " + errors.map(String.init).joined(separator: " "))
    }

    public func setLeader(partition: Int, broker: Int) throws {
        try command("leader \(partition) \(broker)")
    }

    public func setBroker(_ broker: Int, up: Bool) throws {
        try command("\(up ? "up" : "down") \(broker)")
    }

    /// Every record of the topic, partition by partition in offset order.
    public func records() throws -> [Record] {
        try send("dump")
        var records: [Record] = []
        while true {
            let line = try Self.readLine(from: output.fileHandleForReading, buffer: &buffer, within: 60)
            guard line.hasPrefix("{") else { throw NATSTestError("kafka_mock_cluster dump: \(line)") }
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            if let end = object["end"] as? Int {
                guard end == records.count else { throw NATSTestError("dump said \(end) records, read \(records.count)") }
                return records.sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }
            }
            guard let partition = object["partition"] as? Int, let offset = object["offset"] as? Int,
                let key = object["key"] as? String, let headers = object["headers"] as? [String: String],
                let value = object["value"]
            else { throw NATSTestError("kafka_mock_cluster dump line: \(line)") }
            records.append(
                Record(
                    partition: partition, offset: offset, key: key, headers: headers,
                    value: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])))
        }
    }

    private func command(_ line: String) throws {
        try send(line)
        let answer = try Self.readLine(from: output.fileHandleForReading, buffer: &buffer, within: 20)
        guard answer == "ok" else { throw NATSTestError("kafka_mock_cluster \(line): \(answer)") }
    }

    private func send(_ line: String) throws {
        try input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8))
    }

    /// One line from `handle`, waiting at most `seconds`.
    private static func readLine(from handle: FileHandle, buffer: inout Data, within seconds: Double) throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer = Data(buffer[buffer.index(after: newline)...])
                return line
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw NATSTestError("kafka_mock_cluster did not answer within \(seconds) s") }
            var descriptor = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(min(left, 1) * 1000)) >= 0 else { continue }
            guard descriptor.revents != 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = read(handle.fileDescriptor, &chunk, chunk.count)
            guard count > 0 else { throw NATSTestError("kafka_mock_cluster closed its output") }
            buffer.append(contentsOf: chunk[0..<count])
        }
    }

    /// The helper built from scripts/kafka/kafka_mock_cluster.c, once per process.
    private static func helper() throws -> URL {
        try built.get()
    }

    private static let built: Result<URL, any Error> = Result {
        let source = TestPaths.file("scripts/kafka/kafka_mock_cluster.c")
        let binary = FileManager.default.temporaryDirectory.appendingPathComponent("kafka_mock_cluster-\(getpid())")
        let result = try run(
            URL(fileURLWithPath: "/usr/bin/env"), ["cc", "-O1", "-o", binary.path, source.path, "-lrdkafka", "-ldl"], timeout: 120)
        guard result.status == 0 else {
            throw NATSTestError("cc kafka_mock_cluster.c (librdkafka-dev installed?): \(result.stderr)")
        }
        return binary
    }
}
