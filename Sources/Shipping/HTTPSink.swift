import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
public import Outbox

/// POSTs batches to the billing consumer: a JSON array (`http`) or a CloudEvents batch
/// (`cloudevents`), with a bearer token, extra headers, an `Idempotency-Key`, and https with an
/// optional custom CA.
public final class HTTPSink: EventSink {
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
    private let client: HTTPClient

    public var type: String { settings.format.rawValue }

    public init(settings: Settings) throws {
        self.settings = settings
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(
                connect: .milliseconds(Int64(settings.connectTimeoutSeconds * 1000)),
                read: .milliseconds(Int64(settings.requestTimeoutSeconds * 1000))))
        if let caFile = settings.caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            configuration.tlsConfiguration = tls
        }
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func send(_ batch: [OutboxEvent]) async -> ShipOutcome {
        var request = HTTPClientRequest(url: settings.url)
        request.method = .POST
        let body: Data
        switch settings.format {
        case .json:
            request.headers.add(name: "Content-Type", value: "application/json")
            body = BatchEncoder.jsonArray(batch)
        case .cloudEvents:
            request.headers.add(name: "Content-Type", value: "application/cloudevents-batch+json")
            body = BatchEncoder.cloudEventsBatch(batch, hostID: settings.hostID)
        }
        request.headers.add(name: "Idempotency-Key", value: BatchEncoder.idempotencyKey(batch))
        request.headers.add(name: "User-Agent", value: "hostmeter")
        if let token = settings.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in settings.headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))

        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(settings.requestTimeoutSeconds * 1000)))
            let text = try await Self.prefix(of: response.body)
            let retryAfter = RetryAfter.seconds(response.headers.first(name: "Retry-After"), now: Date())
            return ResponseClassifier.classify(
                status: Int(response.status.code), retryAfter: retryAfter, body: String(buffer: text))
        } catch {
            return Self.outcome(for: error)
        }
    }

    /// How much of a response body is read: enough to explain a failure in the log.
    static let bodyReadLimit = 64 << 10

    /// The first `limit` bytes of a response body; the rest is not read (the connection is closed).
    /// The status is the answer and the body only explains it, so a body over the limit must not
    /// turn a 2xx into a failure: the events would be sent again forever. A connection that breaks
    /// before the limit still throws: the answer may be incomplete.
    static func prefix(of body: HTTPClientResponse.Body, limit: Int = bodyReadLimit) async throws -> ByteBuffer {
        var collected = ByteBuffer()
        for try await var chunk in body {
            let room = limit - collected.readableBytes
            guard chunk.readableBytes < room else {
                if let part = chunk.readSlice(length: room) { collected.writeImmutableBuffer(part) }
                break
            }
            collected.writeBuffer(&chunk)
        }
        return collected
    }

    /// Transport failures are all retryable; the reason says which kind.
    static func outcome(for error: any Error) -> ShipOutcome {
        let detail = String(describing: error)
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout, .readTimeout, .deadlineExceeded, .writeTimeout:
                return .retryable(reason: .timeout, detail: detail, retryAfter: nil)
            case .remoteConnectionClosed, .bodyLengthMismatch:
                return .retryable(reason: .connectionClosed, detail: detail, retryAfter: nil)
            default:
                break
            }
        }
        if error is NIOConnectionError || detail.contains("connectionRefused") || detail.contains("Connection refused") {
            return .retryable(reason: .connect, detail: detail, retryAfter: nil)
        }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return .retryable(reason: .timeout, detail: detail, retryAfter: nil)
        }
        if error is HTTPParserError || error is NIOSSLError {
            return .retryable(reason: .connectionClosed, detail: detail, retryAfter: nil)
        }
        return .retryable(reason: .io, detail: detail, retryAfter: nil)
    }

    public func shutdown() async {
        try? await client.shutdown()
    }
}
