import CNATS
import Foundation
public import Outbox
import Synchronization

/// Publishes events to NATS JetStream through the NATS C client (Debian's libnats): one message per
/// event on the subject of `sink.nats.subject`, its `Nats-Msg-Id` the event id, so that the stream
/// stores an event sent twice (a retry, a restart after kill -9) once, within its duplicate window.
///
/// A batch is published asynchronously, at most `maxInFlight` messages awaiting their PubAck at a
/// time, and counts as delivered only when every event's PubAck came back: the stream stored it
/// (replicated, when it is) or already had it (a duplicate PubAck). Anything else leaves the batch
/// in the outbox: no responders (no stream on the subject), a timeout, a lost connection, or a
/// refusal of the stream are retried; only a refusal of one event itself (larger than the server
/// or the stream takes) is `.rejected`, so that the shipper bisects down to it and dead-letters it.
///
/// `send` blocks its thread while it publishes and waits for the acknowledgements (up to
/// `ackTimeoutSeconds`, and after a graceful shutdown began at most the drain time; checked every
/// second): the agent runs the shipper on a thread of its own, never on Swift's shared pool.
public final class NATSSink: Sink {
    public struct Settings: Sendable {
        /// One or more `nats://` or `tls://` URLs, separated by commas: the servers of a cluster.
        public var servers: String
        public var subject: NATSSubjectTemplate
        public var hostID: String
        /// The stream that must store the events (`Nats-Expected-Stream`): a PubAck from any other
        /// is a refusal. nil: whichever stream listens on the subject.
        public var stream: String?
        public var token: String?
        public var user: String?
        public var password: String?
        /// A `.creds` file (user JWT and NKey seed).
        public var credentialsFile: String?
        /// An NKey public key (`U…`) and the file of its seed.
        public var nkey: String?
        public var nkeySeedFile: String?
        /// PEM file of CA certificates to trust; set, the connection is TLS.
        public var caFile: String?
        public var connectTimeoutSeconds: Double
        public var ackTimeoutSeconds: Double
        /// The most messages published and not yet acknowledged.
        public var maxInFlight: Int

        public init(
            servers: String, subject: NATSSubjectTemplate, hostID: String, stream: String? = nil, token: String? = nil,
            user: String? = nil, password: String? = nil, credentialsFile: String? = nil, nkey: String? = nil,
            nkeySeedFile: String? = nil, caFile: String? = nil, connectTimeoutSeconds: Double = 10,
            ackTimeoutSeconds: Double = 30, maxInFlight: Int = 1000
        ) {
            self.servers = servers
            self.subject = subject
            self.hostID = hostID
            self.stream = stream
            self.token = token
            self.user = user
            self.password = password
            self.credentialsFile = credentialsFile
            self.nkey = nkey
            self.nkeySeedFile = nkeySeedFile
            self.caFile = caFile
            self.connectTimeoutSeconds = connectTimeoutSeconds
            self.ackTimeoutSeconds = ackTimeoutSeconds
            self.maxInFlight = maxInFlight
        }
    }

    public let settings: Settings
    public var type: String { "nats" }

    /// The connection and its JetStream context, made on the first send and again after the
    /// library closed it; `nil` between. Every use holds the lock: one batch at a time.
    private let link = Mutex<Link?>(nil)
    /// Where the library's threads leave each message's acknowledgement. Retained once more for
    /// the life of the process: nats.c may still run the acknowledgement callback on its own
    /// thread after the connection is closed, so the object it is handed must never be freed (a
    /// few dozen bytes per sink made).
    private let acks: AckBook
    /// When this sink's waits first saw a graceful shutdown.
    private let shutdownWatch = ShutdownWatch()

    public init(settings: Settings) {
        self.settings = settings
        acks = AckBook()
        _ = Unmanaged.passRetained(acks)
    }

    public func send(_ batch: [OutboxEvent]) async -> ShipOutcome {
        guard !batch.isEmpty else { return .delivered }
        return link.withLock { link -> ShipOutcome in
            if let current = link, natsConnection_Status(current.connection) == NATS_CONN_STATUS_CLOSED {
                current.close()
                link = nil
            }
            if link == nil {
                switch Link.open(settings, acksClosure: Unmanaged.passUnretained(acks).toOpaque()) {
                case .success(let opened): link = opened
                case .failure(let failure): return failure.outcome
                }
            }
            guard let current = link else { return .retryable(reason: .connect, detail: "no connection", retryAfter: nil) }
            let status = natsConnection_Status(current.connection)
            guard status == NATS_CONN_STATUS_CONNECTED else {
                return .retryable(
                    reason: .connectionClosed, detail: "the connection to NATS is \(Self.describe(status)); the client reconnects",
                    retryAfter: nil)
            }
            return publish(batch, on: current)
        }
    }

    public func shutdown() async {
        link.withLock { link in
            link?.close()
            link = nil
        }
    }

    deinit {
        link.withLock { $0?.close() }
    }

    // MARK: Publishing

    /// What became of one event.
    enum Fate: Sendable, Equatable {
        case stored
        case duplicate
        /// Refused or failed: the library's status, the JetStream error code (0: none) and its text.
        case failed(status: UInt32, code: Int32, text: String)
    }

    private func publish(_ batch: [OutboxEvent], on link: Link) -> ShipOutcome {
        // Acknowledgements of an earlier batch that came after it was given up are not this one's.
        _ = acks.take()
        var fates: [String: Fate] = [:]
        var stoppedBy: ShipOutcome?
        for event in batch {
            let status = publishOne(event, on: link)
            guard status != NATS_OK else { continue }
            let fate = Fate.failed(status: status.rawValue, code: 0, text: Self.lastError(status))
            fates[event.eventID] = fate
            // Only a payload too large is about this event; anything else fails the rest too.
            if status != NATS_MAX_PAYLOAD {
                stoppedBy = Self.outcome(of: fate, event: event, settings: settings)
                break
            }
        }
        let waited = awaitAcknowledgements(on: link)
        for (eventID, fate) in acks.take() { fates[eventID] = fate }
        if let stoppedBy { return stoppedBy }
        var rejection: ShipOutcome?
        for event in batch {
            guard let fate = fates[event.eventID] else {
                return .retryable(
                    reason: .timeout,
                    detail: "no PubAck for event \(event.eventID) within \(settings.ackTimeoutSeconds) s"
                        + (waited == NATS_TIMEOUT ? "" : " (\(Self.lastError(waited)))"),
                    retryAfter: nil)
            }
            switch Self.outcome(of: fate, event: event, settings: settings) {
            case .delivered: continue
            case .rejected(let reason, let detail, let bisectable):
                rejection = rejection ?? .rejected(reason: reason, detail: detail, bisectable: bisectable)
            case let retry: return retry
            }
        }
        return rejection ?? .delivered
    }

    /// Publishes `event` without waiting for its PubAck; the library owns the message after.
    private func publishOne(_ event: OutboxEvent, on link: Link) -> natsStatus {
        let subject = settings.subject.subject(for: event, hostID: settings.hostID)
        var message: OpaquePointer?
        var status = event.payload.withUnsafeBytes { payload in
            natsMsg_Create(&message, subject, nil, payload.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(payload.count))
        }
        defer { natsMsg_Destroy(message) }
        guard status == NATS_OK else { return status }
        status = natsMsgHeader_Set(message, "Nats-Msg-Id", event.eventID)
        guard status == NATS_OK else { return status }
        status = natsMsgHeader_Set(message, "Content-Type", "application/json")
        guard status == NATS_OK else { return status }
        status = natsMsgHeader_Set(message, "Hostmeter-Event-Type", event.eventType)
        guard status == NATS_OK else { return status }
        var options = jsPubOptions()
        jsPubOptions_Init(&options)
        guard let stream = settings.stream else { return js_PublishMsgAsync(link.jetStream, &message, &options) }
        return stream.withCString { name in
            options.ExpectStream = name
            return js_PublishMsgAsync(link.jetStream, &message, &options)
        }
    }

    /// Waits until every published message has its PubAck or error, for at most the ack timeout;
    /// what is still pending then is taken back from the library (a late PubAck is dropped, and
    /// the retry of the batch is deduplicated by its message ids).
    private func awaitAcknowledgements(on link: Link) -> natsStatus {
        let wait = AcknowledgementWait(seconds: settings.ackTimeoutSeconds, shutdown: shutdownWatch)
        var status: natsStatus
        repeat {
            var options = jsPubOptions()
            jsPubOptions_Init(&options)
            options.MaxWait = min(1000, wait.millisecondsLeft)
            status = js_PublishAsyncComplete(link.jetStream, &options)
        } while status == NATS_TIMEOUT && wait.goesOn()
        if status != NATS_OK {
            var pending = natsMsgList()
            if js_PublishAsyncGetPendingList(&pending, link.jetStream) == NATS_OK { natsMsgList_Destroy(&pending) }
        }
        return status
    }

    /// The outcome one event's fate makes of its batch.
    static func outcome(of fate: Fate, event: OutboxEvent, settings: Settings) -> ShipOutcome {
        let eventID = event.eventID
        switch fate {
        case .stored, .duplicate: return .delivered
        case .failed(let rawStatus, let code, let text):
            let status = natsStatus(rawValue: rawStatus)
            // The server's words go to the log, /health and dead letters: 300 characters at most,
            // as an HTTP consumer's answer.
            let said = text.isEmpty ? String(cString: natsStatus_GetText(status)) : String(text.prefix(300))
            if code == Int32(JSStreamMessageExceedsMaximumErr.rawValue) || status == NATS_MAX_PAYLOAD {
                return .rejected(
                    reason: .brokerRejected, detail: "NATS refused event \(eventID): \(said)", bisectable: true)
            }
            if code != 0 {
                return .retryable(
                    reason: .brokerRefused, detail: "JetStream refused the publish: \(said) (err_code \(code))", retryAfter: nil)
            }
            switch status {
            case NATS_NO_RESPONDERS:
                return .retryable(
                    reason: .noResponders,
                    detail: "no JetStream stream stores subject \(settings.subject.subject(for: event, hostID: settings.hostID)) (\(said))",
                    retryAfter: nil)
            case NATS_TIMEOUT:
                return .retryable(reason: .timeout, detail: "NATS: \(said)", retryAfter: nil)
            case NATS_CONNECTION_AUTH_FAILED, NATS_NOT_PERMITTED:
                return .retryable(reason: .authentication, detail: "NATS: \(said)", retryAfter: nil)
            default:
                return .retryable(reason: .connectionClosed, detail: "NATS: \(said)", retryAfter: nil)
            }
        }
    }

    /// The library's text for `status` with the last error it recorded on this thread.
    static func lastError(_ status: natsStatus) -> String {
        var last = NATS_OK
        if let text = nats_GetLastError(&last), last == status {
            return String(cString: text)
        }
        return String(cString: natsStatus_GetText(status))
    }

    /// The servers with any user and password in a URL replaced by `***`, for messages that reach
    /// the log and `/health`.
    static func redacted(_ servers: String) -> String {
        servers.split(separator: ",", omittingEmptySubsequences: false).map { server -> String in
            let text = String(server)
            guard let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].lastIndex(of: "@") else { return text }
            return String(text[..<scheme.upperBound]) + "***" + String(text[at...])
        }.joined(separator: ",")
    }

    /// Gives the library each URL of a comma-separated list.
    static func setServers(_ options: OpaquePointer, _ servers: String) -> natsStatus {
        let urls = servers.split(separator: ",").map { strdup($0.trimmingCharacters(in: .whitespaces)) }
        defer { urls.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = urls.map { $0.map { UnsafePointer($0) } }
        return pointers.withUnsafeMutableBufferPointer { natsOptions_SetServers(options, $0.baseAddress, Int32($0.count)) }
    }

    private static func describe(_ status: natsConnStatus) -> String {
        switch status {
        case NATS_CONN_STATUS_DISCONNECTED: "disconnected"
        case NATS_CONN_STATUS_CONNECTING: "connecting"
        case NATS_CONN_STATUS_CONNECTED: "connected"
        case NATS_CONN_STATUS_CLOSED: "closed"
        case NATS_CONN_STATUS_RECONNECTING: "reconnecting"
        default: "draining"
        }
    }
}

// MARK: - The connection

extension NATSSink {
    /// A connection and its JetStream context; used only under the sink's lock.
    final class Link: @unchecked Sendable {
        let connection: OpaquePointer
        let jetStream: OpaquePointer

        private init(connection: OpaquePointer, jetStream: OpaquePointer) {
            self.connection = connection
            self.jetStream = jetStream
        }

        func close() {
            jsCtx_Destroy(jetStream)
            natsConnection_Close(connection)
            natsConnection_Destroy(connection)
        }

        /// Connects to `settings.servers` with its credentials; a failure is the outcome to report.
        static func open(_ settings: Settings, acksClosure: UnsafeMutableRawPointer) -> Result<Link, LinkFailure> {
            var options: OpaquePointer?
            guard natsOptions_Create(&options) == NATS_OK, let options else {
                return .failure(LinkFailure(outcome: .retryable(reason: .connect, detail: "NATS: cannot create options", retryAfter: nil)))
            }
            defer { natsOptions_Destroy(options) }
            var steps: [(String, () -> natsStatus)] = [
                ("url", { NATSSink.setServers(options, settings.servers) }),
                ("name", { natsOptions_SetName(options, "hostmeter \(settings.hostID)") }),
                ("timeout", { natsOptions_SetTimeout(options, Int64(settings.connectTimeoutSeconds * 1000)) }),
                // Reconnect for ever (the outbox keeps the events meanwhile), with jitter so that a
                // fleet does not come back in step.
                ("max_reconnect", { natsOptions_SetMaxReconnect(options, -1) }),
                ("reconnect_wait", { natsOptions_SetReconnectWait(options, 500) }),
                ("reconnect_jitter", { natsOptions_SetReconnectJitter(options, 500, 2000) }),
                // A lost server is noticed within a minute even when nothing is published.
                ("ping_interval", { natsOptions_SetPingInterval(options, 20_000) }),
            ]
            if let token = settings.token { steps.append(("token", { natsOptions_SetToken(options, token) })) }
            if let user = settings.user {
                steps.append(("user", { natsOptions_SetUserInfo(options, user, settings.password) }))
            }
            if let file = settings.credentialsFile {
                steps.append(("credentials_file", { natsOptions_SetUserCredentialsFromFiles(options, file, nil) }))
            }
            if let nkey = settings.nkey, let seed = settings.nkeySeedFile {
                steps.append(("nkey_seed_file", { natsOptions_SetNKeyFromSeed(options, nkey, seed) }))
            }
            if let caFile = settings.caFile {
                steps.append(("secure", { natsOptions_SetSecure(options, true) }))
                steps.append(("ca_file", { natsOptions_LoadCATrustedCertificates(options, caFile) }))
            }
            for (name, step) in steps {
                let status = step()
                guard status == NATS_OK else {
                    return .failure(
                        LinkFailure(
                            outcome: .retryable(
                                reason: .connect, detail: "NATS option \(name): \(NATSSink.lastError(status))", retryAfter: nil)))
                }
            }
            var connection: OpaquePointer?
            let status = natsConnection_Connect(&connection, options)
            guard status == NATS_OK, let connection else {
                let said = NATSSink.lastError(status)
                let reason: ShipFailureReason =
                    switch status {
                    case NATS_CONNECTION_AUTH_FAILED, NATS_NOT_PERMITTED: .authentication
                    case NATS_TIMEOUT: .timeout
                    default: .connect
                    }
                return .failure(LinkFailure(outcome: .retryable(reason: reason, detail: "cannot connect to \(NATSSink.redacted(settings.servers)): \(said)", retryAfter: nil)))
            }
            var jsOptions = jsOptions()
            jsOptions_Init(&jsOptions)
            let ackMilliseconds = Int64(settings.ackTimeoutSeconds * 1000)
            jsOptions.Wait = ackMilliseconds
            jsOptions.PublishAsync.MaxPending = Int64(settings.maxInFlight)
            jsOptions.PublishAsync.StallWait = ackMilliseconds
            jsOptions.PublishAsync.AckHandler = natsAckHandler
            jsOptions.PublishAsync.AckHandlerClosure = acksClosure
            var jetStream: OpaquePointer?
            let jsStatus = natsConnection_JetStream(&jetStream, connection, &jsOptions)
            guard jsStatus == NATS_OK, let jetStream else {
                natsConnection_Destroy(connection)
                return .failure(
                    LinkFailure(
                        outcome: .retryable(
                            reason: .connect, detail: "NATS JetStream context: \(NATSSink.lastError(jsStatus))", retryAfter: nil)))
            }
            return .success(Link(connection: connection, jetStream: jetStream))
        }
    }
}

/// Why a connection could not be made: the outcome the batch reports.
struct LinkFailure: Error {
    let outcome: ShipOutcome
}

// MARK: - Acknowledgements

/// The fates of published messages, by event id, as the library's threads report them.
final class AckBook: Sendable {
    private let fates = Mutex<[String: NATSSink.Fate]>([:])

    func record(_ eventID: String, _ fate: NATSSink.Fate) {
        fates.withLock { $0[eventID] = fate }
    }

    /// Everything recorded since the last call.
    func take() -> [String: NATSSink.Fate] {
        fates.withLock { fates in
            defer { fates = [:] }
            return fates
        }
    }
}

/// The JetStream acknowledgement callback: runs on a thread of nats.c for each message published
/// asynchronously, with its PubAck or its error; `closure` is the sink's `AckBook`. The message is
/// the callback's to destroy.
private let natsAckHandler: jsPubAckHandler = { _, message, pubAck, pubAckError, closure in
    defer { natsMsg_Destroy(message) }
    guard let message, let closure else { return }
    var id: UnsafePointer<CChar>?
    guard natsMsgHeader_Get(message, "Nats-Msg-Id", &id) == NATS_OK, let id else { return }
    let book = Unmanaged<AckBook>.fromOpaque(closure).takeUnretainedValue()
    if let pubAck {
        book.record(String(cString: id), pubAck.pointee.Duplicate ? .duplicate : .stored)
    } else if let pubAckError {
        let error = pubAckError.pointee
        book.record(
            String(cString: id),
            .failed(status: error.Err.rawValue, code: Int32(error.ErrCode.rawValue), text: error.ErrText.map { String(cString: $0) } ?? ""))
    }
}
