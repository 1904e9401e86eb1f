import Foundation
public import Hummingbird
public import Logging
import RuntimeState

/// What the authorizer answers for one request at one route.
public enum AccessDecision: Sendable, Equatable {
    /// Served; the role is nil when no token was needed (no tokens loaded, or open monitoring).
    case allow(APIRole?)
    /// 401: no credential, or one that is not valid.
    case unauthorized(reason: String, message: String)
    /// 403: a valid credential (or none possible) that this route does not accept.
    case forbidden(reason: String, message: String)
}

/// Decides who may use a route, from the route's access and the bearer token, and nothing else:
/// not from the path as written, which the router may match in more than one spelling.
public struct Authorizer: Sendable {
    let tokens: TokenStore
    /// With tokens, whether `/health` and `/metrics` need admin or the metrics role.
    let protectMonitoring: Bool

    public init(tokens: TokenStore, protectMonitoring: Bool) {
        self.tokens = tokens
        self.protectMonitoring = protectMonitoring
    }

    /// The decision for a request with this `Authorization` header value (nil: none).
    public func decide(_ access: RouteAccess, authorization: String?) -> AccessDecision {
        guard tokens.isEnabled else {
            if access == .change {
                return .forbidden(
                    reason: "no tokens",
                    message: "changes need an admin token, and this agent has no api.tokens_file: "
                        + "configure one to change instances or rules over the API")
            }
            return .allow(nil)
        }
        if access == .monitoring, !protectMonitoring { return .allow(nil) }
        guard let authorization else {
            return .unauthorized(reason: "no token", message: "a bearer token is required")
        }
        guard let role = Self.bearer(authorization).flatMap(tokens.role(for:)) else {
            return .unauthorized(reason: "unknown token", message: "the bearer token is not valid")
        }
        switch (access, role) {
        case (.monitoring, .admin), (.monitoring, .metrics), (.usage, .admin), (.usage, .user), (.admin, .admin),
            (.change, .admin):
            return .allow(role)
        case (.monitoring, .user):
            return .forbidden(reason: "not monitoring", message: "this needs an admin or metrics token")
        case (.usage, .metrics):
            return .forbidden(reason: "metrics role", message: "a metrics token may read /health and /metrics only")
        case (.admin, _), (.change, _):
            return .forbidden(reason: "not admin", message: "this needs an admin token")
        }
    }

    /// The token of `Bearer <token>` (the scheme in any case), or nil.
    static func bearer(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }
}

extension Authorizer {
    /// Applies the decision to a request routed to `route`: the caller's role, or a 401/403 error
    /// (counted and logged with the route, never the token).
    func authorize(
        _ route: APIRoute, _ request: Request, _ context: APIRequestContext, metrics: AgentMetrics, logger: Logger
    ) throws(APIError) -> APIRole? {
        switch decide(route.access, authorization: request.headers[.authorization]) {
        case .allow(let role):
            return role
        case .unauthorized(let reason, let message):
            refused(route, request, context, reason: reason, metrics: metrics, logger: logger)
            throw APIError(.unauthorized, message, headers: [.wwwAuthenticate: "Bearer realm=\"hostmeter\""])
        case .forbidden(let reason, let message):
            refused(route, request, context, reason: reason, metrics: metrics, logger: logger)
            throw APIError(.forbidden, message)
        }
    }

    private func refused(
        _ route: APIRoute, _ request: Request, _ context: APIRequestContext, reason: String, metrics: AgentMetrics,
        logger: Logger
    ) {
        metrics.recordAuthFailure()
        logger.warning(
            "API request refused",
            metadata: [
                "http.method": "\(request.method)", "http.path": "\(request.uri.path)", "http.route": "\(route.path)",
                "auth.reason": "\(reason)", "peer": "\(context.peer)",
            ])
    }
}
