import Foundation
import NIOCore
public import Outbox

/// POSTs batches to the billing consumer: a JSON array (`http`) or a CloudEvents batch
/// (`cloudevents`, with the instance, user or organisation as subject), with a bearer token, extra
/// headers, an `Idempotency-Key`, gzip when configured, and https with an optional custom CA. A
/// batch counts as delivered on a 2xx answer: the consumer stored it.
public final class HTTPSink: Sink {
    public enum Format: String, Sendable {
        case json = "http"
        case cloudEvents = "cloudevents"
    }

    public struct Settings: Sendable {
        public var url: String
        public var format: Format
        public var hostID: String
        /// The bearer token, already read from `sink.token_file`.
        public var token: String?
        public var headers: [(String, String)]
        public var caFile: String?
        public var connectTimeoutSeconds: Double
        public var requestTimeoutSeconds: Double
        /// What a CloudEvent's `subject` carries (`cloudevents` only).
        public var subject: CloudEventSubject
        public var compression: BodyCompression

        public init(
            url: String, format: Format, hostID: String, token: String? = nil, headers: [(String, String)] = [],
            caFile: String? = nil, connectTimeoutSeconds: Double = 10, requestTimeoutSeconds: Double = 30,
            subject: CloudEventSubject = .instanceID, compression: BodyCompression = .none
        ) {
            self.url = url
            self.format = format
            self.hostID = hostID
            self.token = token
            self.headers = headers
            self.caFile = caFile
            self.connectTimeoutSeconds = connectTimeoutSeconds
            self.requestTimeoutSeconds = requestTimeoutSeconds
            self.subject = subject
            self.compression = compression
        }
    }

    public let settings: Settings
    private let transport: HTTPTransport

    public var type: String { settings.format.rawValue }

    public init(settings: Settings) throws {
        self.settings = settings
        transport = try HTTPTransport(
            settings: HTTPTransport.Settings(
                url: settings.url, headers: (settings.token.map { [("Authorization", "Bearer \($0)")] } ?? []) + settings.headers,
                caFile: settings.caFile, connectTimeoutSeconds: settings.connectTimeoutSeconds,
                requestTimeoutSeconds: settings.requestTimeoutSeconds))
    }

    public func send(_ batch: [OutboxEvent]) async -> ShipOutcome {
        var headers = [("Idempotency-Key", BatchEncoder.idempotencyKey(batch))]
        let body: Data, contentType: String
        switch settings.format {
        case .json:
            body = BatchEncoder.jsonArray(batch)
            contentType = "application/json"
        case .cloudEvents:
            do {
                body = try BatchEncoder.cloudEventsBatch(batch, hostID: settings.hostID, subject: settings.subject)
            } catch {
                // A verdict on one event, found before sending: the shipper bisects the batch
                // down to it and dead-letters it; the others go on.
                return .rejected(reason: .noSubject, detail: error.description, bisectable: true)
            }
            contentType = "application/cloudevents-batch+json"
        }
        let encoded: ByteBuffer
        do {
            encoded = try settings.compression.encode(ByteBuffer(bytes: body))
        } catch {
            return .retryable(reason: .io, detail: "\(settings.compression.rawValue) of the batch failed: \(error)", retryAfter: nil)
        }
        if let encoding = settings.compression.contentEncoding { headers.append(("Content-Encoding", encoding)) }
        return await transport.post(encoded, contentType: contentType, headers: headers)
    }

    public func shutdown() async {
        await transport.shutdown()
    }
}
