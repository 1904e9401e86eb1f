/// The bounds that keep slow or greedy clients from taking the API away from everyone else:
/// how many connections it serves, how many of them one peer may hold, and how long a client may
/// take to send a request.
public struct APILimits: Sendable, Equatable {
    /// Connections open at once. At the bound, a new connection takes the place of the one that
    /// has waited longest on its client; when every open connection is being answered, it is closed.
    public var maxConnections: Int
    /// Connections open at once from one peer (an IPv4 address or an IPv6 /64), enforced the same
    /// way among that peer's connections (`api.max_connections_per_peer`).
    public var maxConnectionsPerPeer: Int
    /// How long a client has to send a whole request, head and body, counted from the accept or
    /// from the previous response; an idle kept-alive connection is closed after as long
    /// (`api.request_timeout_seconds`).
    public var requestTimeout: Duration

    public static let defaultMaxConnections = 256
    public static let defaultMaxConnectionsPerPeer = 32
    public static let defaultRequestTimeout = Duration.seconds(10)

    public init(
        maxConnections: Int = APILimits.defaultMaxConnections,
        maxConnectionsPerPeer: Int = APILimits.defaultMaxConnectionsPerPeer,
        requestTimeout: Duration = APILimits.defaultRequestTimeout
    ) {
        self.maxConnections = max(1, maxConnections)
        self.maxConnectionsPerPeer = max(1, maxConnectionsPerPeer)
        self.requestTimeout = requestTimeout
    }
}
