import Foundation
public import Outbox

/// POSTs batches to the billing consumer: a JSON array (`http`) or a CloudEvents batch
/// (`cloudevents`), with a bearer token, extra headers, an `Idempotency-Key`, and https with an
/// optional custom CA. A batch counts as delivered on a 2xx answer: the consumer stored it.
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

        public init(
            url: String, format: Format, hostID: String, token: String? = nil, headers: [(String, String)] = [],
            caFile: String? = nil, connectTimeoutSeconds: Double = 10, requestTimeoutSeconds: Double = 30
        ) {
            self.url = url
            self.format = format
            self.hostID = hostID
            self.token = token
            self.headers = headers
            self.caFile = caFile
            self.connectTimeoutSeconds = connectTimeoutSeconds
            self.requestTimeoutSeconds = requestTimeoutSeconds
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
        let idempotency = [("Idempotency-Key", BatchEncoder.idempotencyKey(batch))]
        switch settings.format {
        case .json:
            return await transport.post(BatchEncoder.jsonArray(batch), contentType: "application/json", headers: idempotency)
        case .cloudEvents:
            return await transport.post(
                BatchEncoder.cloudEventsBatch(batch, hostID: settings.hostID),
                contentType: "application/cloudevents-batch+json", headers: idempotency)
        }
    }

    public func shutdown() async {
        await transport.shutdown()
    }
}
