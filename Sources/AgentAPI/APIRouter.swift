public import Foundation
public import Hummingbird
public import Logging
import Metering
import NIOCore
public import RuntimeState
public import UsageModel

/// The request context: who is asking, once the token is checked.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Who is asking, as the matched route's authorization found: nil when the route needed no
    /// token (no tokens are loaded, or monitoring is left open).
    public var role: APIRole?
    /// The peer, for logs.
    public let peer: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = source.channel.remoteAddress.map { "\($0)" } ?? "unknown"
    }

    public var maxUploadSize: Int { APIRouter.maxBodyBytes }
}

/// An error answered as JSON: `{"error": {"status": 400, "message": "..."}}`.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        APIRouter.json(status: status, ErrorBody(error: .init(status: status.code, message: message)), headers: headers)
    }

    struct ErrorBody: Encodable {
        struct Detail: Encodable {
            var status: Int
            var message: String
        }
        var error: Detail
    }
}

/// What the router needs from the running agent.
public struct APIDependencies: Sendable {
    /// The running agent's snapshot, shipper and notifier status, and metrics registry.
    public var status: AgentStatus
    public var state: AgentState { status.state }
    public var metrics: AgentMetrics { status.metrics }
    public var tokens: TokenStore
    public var thresholds: ThresholdRuleBook
    /// The metered instances besides the host: manifests from files and from `PUT /instances`.
    public var instances: InstanceRegistry
    /// With tokens, whether /health and /metrics need admin or the metrics role (the default).
    public var protectHealthAndMetrics: Bool
    /// The public half of the agent's signing key (`GET /identity`); nil: none is loaded.
    public var identity: PublicIdentity?
    public var logger: Logger
    public var now: @Sendable () -> Double

    public init(
        status: AgentStatus, tokens: TokenStore,
        thresholds: ThresholdRuleBook, instances: InstanceRegistry = InstanceRegistry(), protectHealthAndMetrics: Bool = true,
        identity: PublicIdentity? = nil, logger: Logger, now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.identity = identity
        self.instances = instances
        self.status = status
        self.tokens = tokens
        self.thresholds = thresholds
        self.protectHealthAndMetrics = protectHealthAndMetrics
        self.logger = logger
        self.now = now
    }
}

/// The local API's routes. Every answer is JSON except /metrics; every error is a JSON body with
/// the status and a message naming what is wrong.
public enum APIRouter {
    /// Request bodies beyond this are refused with 413.
    public static let maxBodyBytes = 64 * 1024

    /// The router: each route of `routes` with its authorization in front of its handler, 405 for
    /// the other methods on a known path, 404 (for everyone) for whatever matches no route. HEAD
    /// is answered as GET is, with the same authorization.
    public static func build(_ dependencies: APIDependencies) -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: JSONErrorMiddleware(logger: dependencies.logger))
        let handlers = Handlers(dependencies: dependencies)
        let authorizer = Authorizer(
            tokens: dependencies.tokens, protectMonitoring: dependencies.protectHealthAndMetrics)
        let (metrics, logger) = (dependencies.metrics, dependencies.logger)
        for route in routes {
            router.on(RouterPath(route.path), method: route.method) { request, context in
                var context = context
                context.role = try authorizer.authorize(route, request, context, metrics: metrics, logger: logger)
                return try await route.handle(handlers, request, context)
            }
        }
        var paths: [String] = []
        for route in routes where !paths.contains(route.path) { paths.append(route.path) }
        for path in paths {
            let allowed = Self.allowed(on: path)
            let methods = Set(routes.filter { $0.path == path }.map(\.method))
            for method in refusedMethods where !methods.contains(method) {
                router.on(RouterPath(path), method: method) { request, _ -> Response in
                    throw APIError(
                        .methodNotAllowed, "\(request.method) is not allowed on \(request.uri.path); allowed: \(allowed)",
                        headers: [.allow: allowed])
                }
            }
        }
        return router
    }

    static func json(status: HTTPResponse.Status = .ok, _ value: some Encodable, headers: HTTPFields = [:]) -> Response {
        json(status: status, bytes: InstanceView.encode(value), headers: headers)
    }

    static func json(status: HTTPResponse.Status = .ok, bytes: [UInt8], headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        fields[.cacheControl] = "no-store"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// Turns every error into a JSON body: ours, Hummingbird's (404 for unknown routes) and anything
/// unexpected (500, logged).
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as HTTPError {
            let message: String =
                switch error.status {
                case .notFound: "no route \(request.method) \(request.uri.path)"
                case .contentTooLarge: "the request body is larger than \(APIRouter.maxBodyBytes) bytes"
                default: error.body ?? error.status.reasonPhrase
                }
            return try APIError(error.status, message, headers: error.headers).response(from: request, context: context)
        } catch let error as any HTTPResponseError {
            return try APIError(error.status, error.status.reasonPhrase).response(from: request, context: context)
        } catch {
            logger.error(
                "API request failed", metadata: ["http.path": "\(request.uri.path)", "error": "\(error)"])
            return try APIError(.internalServerError, "internal error").response(from: request, context: context)
        }
    }
}
