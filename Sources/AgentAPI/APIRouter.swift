public import Foundation
public import Hummingbird
public import Logging
import Metering
import NIOCore
public import Shipping
import UsageModel

/// The request context: who is asking, once the token is checked.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// nil when no tokens are configured (authentication off).
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
    public var state: AgentState
    public var shipper: ShipperStatus
    public var metrics: AgentMetrics
    public var tokens: TokenStore
    public var thresholds: ThresholdRuleBook
    /// The metered instances besides the host: manifests from files and from `PUT /instances`.
    public var instances: InstanceRegistry
    /// Whether /health and /metrics need a token too (when tokens are configured).
    public var protectHealthAndMetrics: Bool
    public var logger: Logger
    public var now: @Sendable () -> Double

    public init(
        state: AgentState, shipper: ShipperStatus, metrics: AgentMetrics, tokens: TokenStore,
        thresholds: ThresholdRuleBook, instances: InstanceRegistry = InstanceRegistry(), protectHealthAndMetrics: Bool = false,
        logger: Logger, now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.instances = instances
        self.state = state
        self.shipper = shipper
        self.metrics = metrics
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
    /// The methods of each route, for 405 answers.
    static let methods = [
        "/get": "GET", "/health": "GET", "/metrics": "GET", "/thresholds": "GET, PUT, DELETE", "/outbox": "GET",
        "/instances": "GET",
    ]

    /// The methods allowed on `path`, for 405 answers: `/instances/{id}` is one route.
    static func allowedMethods(_ path: String) -> String? {
        if let allowed = methods[path] { return allowed }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 3, parts[1] == "instances", !parts[2].isEmpty { return "GET, PUT, DELETE" }
        return nil
    }

    /// Request bodies beyond this are refused with 413.
    public static let maxBodyBytes = 64 * 1024

    public static func build(_ dependencies: APIDependencies) -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: JSONErrorMiddleware(logger: dependencies.logger))
        router.add(middleware: AuthenticationMiddleware(dependencies: dependencies))
        let handlers = Handlers(dependencies: dependencies)
        router.get("/get", use: handlers.get)
        router.get("/health", use: handlers.health)
        router.get("/metrics", use: handlers.metrics)
        router.get("/thresholds", use: handlers.getThresholds)
        router.put("/thresholds", use: handlers.putThresholds)
        router.delete("/thresholds", use: handlers.deleteThresholds)
        router.get("/outbox", use: handlers.outbox)
        router.get("/instances", use: handlers.listInstances)
        router.get("/instances/:id", use: handlers.getInstance)
        router.put("/instances/:id", use: handlers.putInstance)
        router.delete("/instances/:id", use: handlers.deleteInstance)
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

/// Which routes need what.
enum Access {
    case open
    case authenticated
    case admin

    static func of(method: HTTPRequest.Method, path: String, protectHealthAndMetrics: Bool) -> Access {
        if method != .get && method != .head { return .admin }
        switch path {
        case "/health", "/metrics": return protectHealthAndMetrics ? .authenticated : .open
        case "/get", "/instances": return .authenticated
        case "/thresholds", "/outbox": return .admin
        default:
            // A user token may read its own instances (the handler hides the others).
            if path.hasPrefix("/instances/") { return .authenticated }
            return .open  // unknown routes answer 404 to everyone
        }
    }
}

/// Checks the bearer token against the tokens file; counts and logs failures, never the token.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let dependencies: APIDependencies

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard dependencies.tokens.isEnabled else { return try await next(request, context) }
        let access = Access.of(
            method: request.method, path: request.uri.path, protectHealthAndMetrics: dependencies.protectHealthAndMetrics)
        var context = context
        let header = request.headers[.authorization]
        if let header {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                context.role = dependencies.tokens.role(for: parts[1].trimmingCharacters(in: .whitespaces))
            }
        }
        switch (access, context.role) {
        case (.open, _), (.authenticated, .some), (.admin, .admin?):
            return try await next(request, context)
        case (.authenticated, nil), (.admin, nil):
            refuse(request, context, reason: header == nil ? "no token" : "unknown token")
            throw APIError(
                .unauthorized, header == nil ? "a bearer token is required" : "the bearer token is not valid",
                headers: [.wwwAuthenticate: "Bearer realm=\"hostmeter\""])
        case (.admin, .user?):
            refuse(request, context, reason: "not admin")
            throw APIError(.forbidden, "this needs an admin token")
        }
    }

    private func refuse(_ request: Request, _ context: Context, reason: String) {
        dependencies.metrics.recordAuthFailure()
        dependencies.logger.warning(
            "API request refused",
            metadata: [
                "http.method": "\(request.method)", "http.path": "\(request.uri.path)", "auth.reason": "\(reason)",
                "peer": "\(context.peer)", "role": "\(context.role.map { "\($0)" } ?? "none")",
            ])
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
        } catch let error as HTTPError where error.status == .notFound {
            if let allowed = APIRouter.allowedMethods(request.uri.path) {
                return try APIError(
                    .methodNotAllowed, "\(request.method) is not allowed on \(request.uri.path); allowed: \(allowed)",
                    headers: [.allow: allowed]
                ).response(from: request, context: context)
            }
            return try APIError(.notFound, "no route \(request.method) \(request.uri.path)")
                .response(from: request, context: context)
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
