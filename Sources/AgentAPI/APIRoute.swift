public import Hummingbird

/// Who may use a route. Every route names one; `Authorizer` decides from it alone, at the route
/// the router matched, so a path the router treats as the same route gets the same decision.
public enum RouteAccess: String, Sendable, CaseIterable {
    /// `/health`, `/metrics`: figures of every user. With tokens: admin or the `metrics` role
    /// (anyone when `api.auth_health_and_metrics` is false). Without tokens: anyone.
    case monitoring
    /// Usage of instances: admin, or a user token (the handler shows only that user's own
    /// instances and nothing of the host). Without tokens: anyone.
    case usage
    /// The agent's internals (rules, outbox): admin. Without tokens: anyone (reads only).
    case admin
    /// Anything that changes billing or alerting: an admin token, always. Without tokens nobody
    /// may, since nobody can show a credential.
    case change
}

/// One route of the API: method, path (Hummingbird's syntax, `:id` a parameter), who may use it,
/// and its handler.
public struct APIRoute: Sendable {
    public let method: HTTPRequest.Method
    public let path: String
    public let access: RouteAccess
    let handle: @Sendable (Handlers, Request, APIRequestContext) async throws -> Response

    init(
        _ method: HTTPRequest.Method, _ path: String, _ access: RouteAccess,
        _ handle: @escaping @Sendable (Handlers, Request, APIRequestContext) async throws -> Response
    ) {
        self.method = method
        self.path = path
        self.access = access
        self.handle = handle
    }
}

extension APIRouter {
    /// Every route the API serves. Registration, `405` answers and authorization all read this
    /// table; whatever matches no route answers 404, whoever asks. A route added here without
    /// its rows in the authorization matrix test (`AuthorizationMatrixTests`) fails that test.
    public static let routes: [APIRoute] = [
        APIRoute(.get, "/get", .usage) { try $0.get($1, context: $2) },
        APIRoute(.get, "/health", .monitoring) { try $0.health($1, context: $2) },
        APIRoute(.get, "/metrics", .monitoring) { try $0.metrics($1, context: $2) },
        APIRoute(.get, "/thresholds", .admin) { try $0.getThresholds($1, context: $2) },
        APIRoute(.put, "/thresholds", .change) { try await $0.putThresholds($1, context: $2) },
        APIRoute(.delete, "/thresholds", .change) { try await $0.deleteThresholds($1, context: $2) },
        APIRoute(.get, "/outbox", .admin) { try $0.outbox($1, context: $2) },
        APIRoute(.get, "/identity", .usage) { try $0.identity($1, context: $2) },
        APIRoute(.get, "/instances", .usage) { try $0.listInstances($1, context: $2) },
        APIRoute(.get, "/instances/:id", .usage) { try $0.getInstance($1, context: $2) },
        APIRoute(.put, "/instances/:id", .change) { try await $0.putInstance($1, context: $2) },
        APIRoute(.delete, "/instances/:id", .change) { try await $0.deleteInstance($1, context: $2) },
    ]

    /// The methods answered with 405 (and an `Allow` header) on a known path that lacks them.
    static let refusedMethods: [HTTPRequest.Method] = [.get, .put, .post, .delete, .patch, .options]

    /// The `Allow` header of each path: its methods, and HEAD beside GET (answered as GET is).
    static func allowed(on path: String) -> String {
        var methods = routes.filter { $0.path == path }.map(\.method)
        if methods.contains(.get) { methods.insert(.head, at: methods.firstIndex(of: .get)! + 1) }
        return methods.map(\.rawValue).joined(separator: ", ")
    }
}
