public import AgentAPI

extension AgentConfiguration {
    /// `api:`: where the HTTP API listens, who may use it, and its connection limits.
    public struct API: Sendable, Equatable {
        public var listen = "127.0.0.1:9780"
        public var tokensFile: String?
        /// With tokens configured, whether /health and /metrics need an admin or metrics token
        /// (they carry every user's figures).
        public var authHealthAndMetrics = true
        /// Whether the API may listen beyond loopback with no tokens file: anyone who reaches it
        /// could then read every user's usage. Refused unless this says so.
        public var allowRemoteWithoutTokens = false

        /// Whether `listen` names a loopback host only (127.0.0.0/8, ::1 or localhost).
        public var listensOnLoopbackOnly: Bool {
            guard let host = try? ListenAddress.parse(listen).host else { return false }
            return ListenAddress.isLoopback(host)
        }

        /// `api.max_connections_per_peer`: connections one IPv4 address or IPv6 /64 may hold.
        public var maxConnectionsPerPeer = APILimits.defaultMaxConnectionsPerPeer
        /// `api.request_timeout_seconds`: how long a client may take to send a whole request.
        public var requestTimeoutSeconds = 10.0
        /// `api.tls`: certificate, key and client CA files; none set: plain HTTP. The files are
        /// read and checked by `Agent.loadAPITLS`, not here.
        public var tls = APITLSFiles()

        /// The connection limits these settings give the server.
        public var limits: APILimits {
            APILimits(maxConnectionsPerPeer: maxConnectionsPerPeer, requestTimeout: .milliseconds(Int64((requestTimeoutSeconds * 1000).rounded())))
        }
    }
}

extension AgentConfiguration.API {
    /// The `api:` section; a listen address beyond loopback needs a tokens file or an explicit
    /// `allow_remote_without_tokens: true`.
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        let listenNode = keys["listen"] ?? node.child("listen")
        listen = try keys["listen"]?.string(default: listen) ?? listen
        do {
            _ = try ListenAddress.parse(listen)
        } catch {
            throw listenNode.error("\(error)")
        }
        tokensFile = try keys["tokens_file"]?.optionalString()
        authHealthAndMetrics = try keys["auth_health_and_metrics"]?.bool(default: authHealthAndMetrics) ?? authHealthAndMetrics
        allowRemoteWithoutTokens = try keys["allow_remote_without_tokens"]?.bool(default: allowRemoteWithoutTokens)
            ?? allowRemoteWithoutTokens
        if tokensFile == nil, !allowRemoteWithoutTokens, !listensOnLoopbackOnly {
            throw listenNode.error(
                "\(listen) is beyond loopback and api.tokens_file is not set: anyone who reaches it could read "
                    + "every user's usage; set api.tokens_file, or api.allow_remote_without_tokens: true to accept that")
        }
        maxConnectionsPerPeer = try keys["max_connections_per_peer"]?.int(default: maxConnectionsPerPeer) ?? maxConnectionsPerPeer
        requestTimeoutSeconds = try keys["request_timeout_seconds"]?.double(default: requestTimeoutSeconds) ?? requestTimeoutSeconds
        let tlsKeys = try (keys["tls"] ?? node.child("tls")).section()
        tls = APITLSFiles(
            certificateFile: try tlsKeys["certificate_file"]?.optionalString(),
            keyFile: try tlsKeys["key_file"]?.optionalString(),
            clientCAFile: try tlsKeys["client_ca_file"]?.optionalString())
    }
}
