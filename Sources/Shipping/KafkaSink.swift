import CRdKafka
import Foundation
import Logging
public import Outbox
import Synchronization

/// Produces events to a Kafka topic through librdkafka (Debian's librdkafka1): one record per
/// event, its key the instance id (so each instance's events go to one partition, in order), its
/// headers `event_id`, `content-type` and `schema-version` (and `event-type`).
///
/// The producer is idempotent (`enable.idempotence=true`, `acks=all`): within one producer session
/// librdkafka's own retries (a lost answer, a leader change, a broker error) never write a record
/// twice and keep each partition's order. A batch counts as delivered only when every record's
/// delivery report came back without error: the leader and every in-sync replica stored it. Each
/// record is given `sink.timeout_seconds` (`message.timeout.ms`) to be delivered, and `send`
/// waits for every report, so no record of a failed batch is still queued when the batch is sent
/// again. Failures are classified as for the other sinks: a record larger than the broker or the
/// producer takes is `.rejected` (bisected down to it and dead-lettered), anything else retried.
///
/// `send` blocks its thread while it produces and polls for reports: the agent runs the shipper on
/// a thread of its own, never on Swift's shared pool.
public final class KafkaSink: Sink {
    public struct Settings: Sendable {
        /// `bootstrap.servers`: host:port pairs separated by commas.
        public var brokers: String
        public var topic: String
        public var hostID: String
        /// librdkafka properties passed through as they are (`security.protocol`, `sasl.*`,
        /// `ssl.*`, `compression.type`, `linger.ms`, …), applied before the sink's own.
        public var properties: [(String, String)]
        /// `ssl.ca.location`.
        public var caFile: String?
        /// `message.timeout.ms`: how long a record may take to be delivered, retries included.
        public var deliveryTimeoutSeconds: Double

        public init(
            brokers: String, topic: String, hostID: String, properties: [(String, String)] = [], caFile: String? = nil,
            deliveryTimeoutSeconds: Double = 30
        ) {
            self.brokers = brokers
            self.topic = topic
            self.hostID = hostID
            self.properties = properties
            self.caFile = caFile
            self.deliveryTimeoutSeconds = deliveryTimeoutSeconds
        }

        /// The properties the sink sets itself, whatever `properties` says: what makes its
        /// acknowledgement a durable store's and its retries safe.
        public static let managedProperties: Set<String> = [
            "bootstrap.servers", "metadata.broker.list", "enable.idempotence", "acks", "request.required.acks",
            "message.timeout.ms", "delivery.timeout.ms", "dr_msg_cb", "dr_cb", "opaque", "client.id",
        ]

        /// Sets every property on a configuration that is then thrown away: librdkafka's verdict on
        /// them without making a producer.
        public func check() throws(ConfigurationRefused) {
            guard let configuration = rd_kafka_conf_new() else {
                throw ConfigurationRefused(property: nil, message: "cannot make a configuration")
            }
            defer { rd_kafka_conf_destroy(configuration) }
            try Self.apply(producerProperties, to: configuration)
        }

        static func apply(_ properties: [(String, String)], to configuration: OpaquePointer) throws(ConfigurationRefused) {
            var error = [CChar](repeating: 0, count: 512)
            for (name, value) in properties {
                guard rd_kafka_conf_set(configuration, name, value, &error, error.count) == RD_KAFKA_CONF_OK else {
                    throw ConfigurationRefused(property: name, message: errorText(error))
                }
            }
        }

        /// Every property the producer is made with, in the order it is set.
        var producerProperties: [(String, String)] {
            // Defaults the operator's properties may change: Nagle's algorithm off, or each batch
            // waits for the peer's delayed ACK (about 40 ms on Linux) before its last request goes.
            var all = [("socket.nagle.disable", "true")] + properties
            if let caFile { all.append(("ssl.ca.location", caFile)) }
            all += [
                ("bootstrap.servers", brokers),
                ("client.id", "hostmeter \(hostID)"),
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", String(max(1, Int(deliveryTimeoutSeconds * 1000)))),
            ]
            return all
        }
    }

    /// A property librdkafka refuses, or a producer it cannot make.
    public struct ConfigurationRefused: Error, CustomStringConvertible {
        public let property: String?
        public let message: String
        public var description: String { property.map { "librdkafka property \($0): \(message)" } ?? "librdkafka: \(message)" }
    }

    public let settings: Settings
    public var type: String { "kafka" }

    /// The producer: made at the first batch, and again after a fatal error (an idempotent
    /// producer that lost its sequence cannot go on). Every use holds the lock: one batch at a time.
    private let producer: Mutex<Producer?>
    /// Where the delivery reports are left, by librdkafka's callback on the polling thread.
    private let reports = DeliveryBook()
    /// When this sink's waits first saw a graceful shutdown.
    private let shutdownWatch = ShutdownWatch()

    /// Checks the settings with librdkafka, which throws what it refuses: a property, or a file it
    /// cannot load (`ssl.ca.location`), by making a producer and destroying it at once.
    /// The producer that sends is made at the first batch: records produced right after
    /// `rd_kafka_new` go as soon as the metadata arrives, while records produced once its broker
    /// threads have settled wait for their next one-second round (a first batch took 1.0 s,
    /// measured from C as from here, against librdkafka's mock cluster).
    public init(settings: Settings) throws(ConfigurationRefused) {
        self.settings = settings
        producer = Mutex(nil)
        let check = try Producer(settings, reports: Unmanaged.passUnretained(reports).toOpaque())
        // Destroying it joins librdkafka's broker threads, which may sit in a DNS lookup of a
        // broker's name: not on the caller's thread (the agent's start, a SIGHUP's reload).
        Thread.detachNewThread { withExtendedLifetime(check) {} }
    }

    deinit {
        producer.withLock { $0 = nil }
    }

    public func send(_ batch: [OutboxEvent]) async -> ShipOutcome {
        guard !batch.isEmpty else { return .delivered }
        return producer.withLock { producer -> ShipOutcome in
            if producer == nil {
                do {
                    producer = try Producer(settings, reports: Unmanaged.passUnretained(reports).toOpaque())
                } catch {
                    return .retryable(reason: .connect, detail: "\(error)", retryAfter: nil)
                }
            }
            guard let current = producer else { return .retryable(reason: .connect, detail: "no producer", retryAfter: nil) }
            let outcome = produce(batch, with: current)
            if let fatal = current.fatalError() {
                // The producer cannot go on; the next batch gets a new one (a new producer id).
                producer = nil
                if outcome == .delivered { return outcome }
                return .retryable(reason: .brokerRefused, detail: "Kafka producer failed for good, made again: \(fatal)", retryAfter: nil)
            }
            return outcome
        }
    }

    public func shutdown() async {
        producer.withLock { $0 = nil }
    }

    // MARK: Producing

    /// What became of one record.
    enum Fate: Sendable, Equatable {
        case stored
        case failed(code: Int32, text: String)
    }

    private func produce(_ batch: [OutboxEvent], with producer: Producer) -> ShipOutcome {
        let generation = reports.begin()
        // Every record has its report within message.timeout.ms; the margin covers the timer that
        // fails it.
        let wait = AcknowledgementWait(seconds: settings.deliveryTimeoutSeconds + 10, shutdown: shutdownWatch)
        var fates: [Int: Fate] = [:]
        var produced = 0
        var stoppedBy: ShipOutcome?
        for (index, event) in batch.enumerated() {
            var code = producer.produce(event, topic: settings.topic, token: DeliveryBook.token(generation, index))
            // The local queue is full: serve reports until there is room, within the deadline.
            while code == RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue, wait.goesOn() {
                producer.poll(milliseconds: 50)
                code = producer.produce(event, topic: settings.topic, token: DeliveryBook.token(generation, index))
            }
            if code == 0 {
                produced += 1
                continue
            }
            let fate = Fate.failed(code: code, text: String(cString: rd_kafka_err2str(rd_kafka_resp_err_t(rawValue: code))))
            fates[index] = fate
            // Only a record too large is about this event; anything else fails the rest too.
            if code != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue {
                stoppedBy = Self.outcome(of: fate, eventID: event.eventID, topic: settings.topic)
                break
            }
        }
        // Wait for the report of every produced record, so that none is still queued when this
        // batch is sent again (unless a graceful shutdown cut the wait: the producer is destroyed).
        while reports.count(generation) < produced, wait.goesOn() {
            producer.flush(milliseconds: 100)
        }
        if reports.count(generation) < produced {
            // Given up (a graceful shutdown, cancellation): what librdkafka still holds of this
            // batch must not go out after the batch was reported failed and is sent again later.
            producer.purge()
        }
        for (index, fate) in reports.take(generation) { fates[index] = fate }
        if let stoppedBy { return stoppedBy }
        var rejection: ShipOutcome?
        for (index, event) in batch.enumerated() {
            guard let fate = fates[index] else {
                return .retryable(
                    reason: .timeout,
                    detail: "no delivery report for event \(event.eventID) within \(settings.deliveryTimeoutSeconds) s", retryAfter: nil)
            }
            switch Self.outcome(of: fate, eventID: event.eventID, topic: settings.topic) {
            case .delivered: continue
            case .rejected(let reason, let detail, let bisectable):
                rejection = rejection ?? .rejected(reason: reason, detail: detail, bisectable: bisectable)
            case let retry: return retry
            }
        }
        return rejection ?? .delivered
    }

    /// The outcome one record's fate makes of its batch.
    static func outcome(of fate: Fate, eventID: String, topic: String) -> ShipOutcome {
        guard case .failed(let code, let text) = fate else { return .delivered }
        let said = "\(text) (\(code))"
        switch rd_kafka_resp_err_t(rawValue: code) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_RECORD:
            return .rejected(reason: .brokerRejected, detail: "Kafka refused event \(eventID): \(said)", bisectable: true)
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
            return .retryable(reason: .timeout, detail: "Kafka: \(said)", retryAfter: nil)
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
            return .retryable(reason: .timeout, detail: "Kafka: given up waiting for the delivery report: \(said)", retryAfter: nil)
        case RD_KAFKA_RESP_ERR__AUTHENTICATION, RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED,
            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
            return .retryable(reason: .authentication, detail: "Kafka: \(said)", retryAfter: nil)
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            return .retryable(reason: .brokerRefused, detail: "Kafka topic \(topic): \(said)", retryAfter: nil)
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
            return .retryable(reason: .connect, detail: "Kafka: \(said)", retryAfter: nil)
        default:
            return .retryable(reason: .connectionClosed, detail: "Kafka: \(said)", retryAfter: nil)
        }
    }
}

// MARK: - The producer

extension KafkaSink {
    /// An `rd_kafka_t` producer; destroyed when released. Used only under the sink's lock.
    final class Producer: @unchecked Sendable {
        private let handle: OpaquePointer

        init(_ settings: Settings, reports: UnsafeMutableRawPointer) throws(ConfigurationRefused) {
            guard let configuration = rd_kafka_conf_new() else {
                throw ConfigurationRefused(property: nil, message: "cannot make a configuration")
            }
            do {
                try Settings.apply(settings.producerProperties, to: configuration)
            } catch {
                rd_kafka_conf_destroy(configuration)
                throw error
            }
            var error = [CChar](repeating: 0, count: 512)
            rd_kafka_conf_set_dr_msg_cb(configuration, kafkaDeliveryReport)
            rd_kafka_conf_set_log_cb(configuration, kafkaLog)
            rd_kafka_conf_set_opaque(configuration, reports)
            // rd_kafka_new owns the configuration when it succeeds.
            guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, configuration, &error, error.count) else {
                rd_kafka_conf_destroy(configuration)
                throw ConfigurationRefused(property: nil, message: errorText(error))
            }
            self.handle = handle
        }

        deinit {
            // Nothing of a batch that is over may go out after it, and destroying waits for what
            // is outstanding: drop it first.
            _ = rd_kafka_purge(handle, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
            rd_kafka_destroy(handle)
        }

        /// Queues one record (copied); 0 or the error code.
        func produce(_ event: OutboxEvent, topic: String, token: UInt) -> Int32 {
            let version = EventFields.version(of: event) ?? ""
            return topic.withCString { topic in
                event.instanceID.withCString { key in
                    event.eventID.withCString { eventID in
                        event.eventType.withCString { eventType in
                            version.withCString { version in
                                event.payload.withUnsafeBytes { payload -> Int32 in
                                    var values = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 9)
                                    values[0].vtype = RD_KAFKA_VTYPE_TOPIC
                                    values[0].u.cstr = topic
                                    values[1].vtype = RD_KAFKA_VTYPE_KEY
                                    values[1].u.mem = .init(ptr: UnsafeMutableRawPointer(mutating: key), size: strlen(key))
                                    values[2].vtype = RD_KAFKA_VTYPE_VALUE
                                    values[2].u.mem = .init(ptr: UnsafeMutableRawPointer(mutating: payload.baseAddress), size: payload.count)
                                    values[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                                    values[3].u.i = RD_KAFKA_MSG_F_COPY
                                    values[4].vtype = RD_KAFKA_VTYPE_OPAQUE
                                    values[4].u.ptr = UnsafeMutableRawPointer(bitPattern: token)
                                    values[5] = Self.header("event_id", eventID)
                                    values[6] = Self.header("content-type", Self.cString("application/json"))
                                    values[7] = Self.header("schema-version", version)
                                    values[8] = Self.header("event-type", eventType)
                                    let error = values.withUnsafeBufferPointer { rd_kafka_produceva(handle, $0.baseAddress, $0.count) }
                                    guard let error else { return 0 }
                                    defer { rd_kafka_error_destroy(error) }
                                    return rd_kafka_error_code(error).rawValue
                                }
                            }
                        }
                    }
                }
            }
        }

        /// A static string's bytes, NUL-terminated as every `StaticString` is.
        private static func cString(_ text: StaticString) -> UnsafePointer<CChar> {
            UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
        }

        /// A header whose name is a static string; librdkafka copies name and value.
        private static func header(_ name: StaticString, _ value: UnsafePointer<CChar>) -> rd_kafka_vu_t {
            var header = rd_kafka_vu_t()
            header.vtype = RD_KAFKA_VTYPE_HEADER
            header.u.header = .init(name: cString(name), val: value, size: strlen(value))
            return header
        }

        /// Drops every record not yet acknowledged, queued or in flight, and serves their reports.
        func purge() {
            _ = rd_kafka_purge(handle, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
            rd_kafka_poll(handle, 0)
        }

        /// Sends what is queued now, without waiting out `linger.ms` (the batch is complete), and
        /// serves delivery reports until none is outstanding or `milliseconds` pass.
        func flush(milliseconds: Int32) {
            _ = rd_kafka_flush(handle, milliseconds)
        }

        func poll(milliseconds: Int32) {
            rd_kafka_poll(handle, milliseconds)
        }

        /// The producer's fatal error, if it has one (idempotence lost: it must be made again).
        func fatalError() -> String? {
            var text = [CChar](repeating: 0, count: 512)
            let code = rd_kafka_fatal_error(handle, &text, text.count)
            return code == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : errorText(text)
        }
    }
}

// MARK: - Delivery reports

/// The delivery reports of the batch being sent, by record index. A record's opaque is its token:
/// the batch's generation and its index, so that a report of an earlier batch is told apart.
final class DeliveryBook: Sendable {
    private struct State {
        var generation: UInt = 0
        var fates: [Int: KafkaSink.Fate] = [:]
    }

    private let state = Mutex(State())

    /// Starts a batch: its generation.
    func begin() -> UInt {
        state.withLock { state in
            state.generation = (state.generation + 1) & 0xFFFF_FFFF
            state.fates = [:]
            return state.generation
        }
    }

    static func token(_ generation: UInt, _ index: Int) -> UInt {
        (generation << 32) | UInt(index + 1)
    }

    func record(token: UInt, code: Int32, text: String) {
        state.withLock { state in
            guard token >> 32 == state.generation else { return }
            state.fates[Int(token & 0xFFFF_FFFF) - 1] = code == 0 ? .stored : .failed(code: code, text: text)
        }
    }

    func count(_ generation: UInt) -> Int {
        state.withLock { $0.generation == generation ? $0.fates.count : 0 }
    }

    func take(_ generation: UInt) -> [Int: KafkaSink.Fate] {
        state.withLock { state in
            guard state.generation == generation else { return [:] }
            defer { state.fates = [:] }
            return state.fates
        }
    }
}

/// librdkafka's delivery report callback: runs inside `rd_kafka_poll` on the sink's thread, once
/// per record, with its error (none: the broker stored it with acks=all); `opaque` is the sink's
/// `DeliveryBook`, the record's own opaque its token.
private let kafkaDeliveryReport:
    @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
        _, message, opaque in
        guard let message, let opaque, let token = message.pointee._private else { return }
        let book = Unmanaged<DeliveryBook>.fromOpaque(opaque).takeUnretainedValue()
        let code = message.pointee.err.rawValue
        book.record(
            token: UInt(bitPattern: token), code: code,
            text: code == 0 ? "" : String(cString: rd_kafka_err2str(message.pointee.err)))
    }

/// The text librdkafka wrote into an error buffer, up to its NUL.
private func errorText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// librdkafka's log lines, into the agent's log (logfmt or JSON lines on stderr) instead of its own
/// format on stderr: syslog levels mapped to the logger's, the facility and client as fields.
private let kafkaLog: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    client, level, facility, text in
    let mapped: Logger.Level =
        switch level {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
    kafkaLogger.log(
        level: mapped, "\(text.map { String(cString: $0) } ?? "")",
        metadata: [
            "kafka.facility": "\(facility.map { String(cString: $0) } ?? "")",
            "kafka.client": "\(client.flatMap { rd_kafka_name($0) }.map { String(cString: $0) } ?? "")",
        ])
}

private let kafkaLogger = Logger(label: "hostmeter")
