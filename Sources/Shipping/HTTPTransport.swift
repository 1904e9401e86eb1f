import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The one HTTP client of shipping: POSTs a body to one URL and classifies the answer into a
/// `ShipOutcome`. `HTTPSink` and the Alertmanager notifier both send through it, so timeouts,
/// redirects (refused: a redirect is a misconfigured URL), TLS with a custom CA, the bounded read
/// of the answer and the meaning of every status and transport failure are decided once.
final class HTTPTransport: Sendable {
    struct Settings: Sendable {
        var url: String
        /// Sent with every request after the per-request headers (`Authorization`, extra headers).
        var headers: [(String, String)] = []
        /// A PEM file of the CA certificates to trust instead of the system's.
        var caFile: String?
        var connectTimeoutSeconds: Double
        var requestTimeoutSeconds: Double
    }

    let settings: Settings
    private let client: HTTPClient

    /// Throws when `caFile` cannot be read as PEM certificates.
    convenience init(settings: Settings) throws {
        var tls: TLSConfiguration?
        if let caFile = settings.caFile {
            tls = TLSConfiguration.makeClientConfiguration()
            tls?.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        }
        self.init(settings: settings, tls: tls)
    }

    /// With `tls` nil, https trusts the system's CAs (`caFile` is not read).
    init(settings: Settings, tls: TLSConfiguration?) {
        self.settings = settings
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(
                connect: .milliseconds(Int64(settings.connectTimeoutSeconds * 1000)),
                read: .milliseconds(Int64(settings.requestTimeoutSeconds * 1000))))
        if let tls { configuration.tlsConfiguration = tls }
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// POSTs `body` with `Content-Type: contentType`, then `headers` (this request's own, e.g.
    /// `Idempotency-Key`), `User-Agent` and the settings' headers, within the request timeout.
    func post(_ body: Data, contentType: String, headers: [(String, String)] = []) async -> ShipOutcome {
        await post(ByteBuffer(bytes: body), contentType: contentType, headers: headers)
    }

    func post(_ body: ByteBuffer, contentType: String, headers: [(String, String)] = []) async -> ShipOutcome {
        var request = HTTPClientRequest(url: settings.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.headers.add(name: "User-Agent", value: "hostmeter")
        for (name, value) in settings.headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(body)
        do {
            let response = try await client.execute(
                request, timeout: .milliseconds(Int64(settings.requestTimeoutSeconds * 1000)))
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

    /// Closes the client's connections; no request may follow.
    func shutdown() async {
        try? await client.shutdown()
    }
}
