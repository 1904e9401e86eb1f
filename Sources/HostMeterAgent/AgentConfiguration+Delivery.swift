extension AgentConfiguration {
    /// `retry:`: the backoff between delivery attempts.
    public struct Retry: Sendable, Equatable {
        public var baseSeconds = 1.0
        public var capSeconds = 300.0
    }

    /// `circuit_breaker:`: when delivery stops trying for a while.
    public struct CircuitBreaker: Sendable, Equatable {
        public var failureThreshold = 5
        public var openSeconds = 30.0
    }

    /// `outbox:`: the bound on undelivered events.
    public struct OutboxSettings: Sendable, Equatable {
        public var maxBytes = 1_073_741_824
    }
}

extension AgentConfiguration.Retry {
    /// The `retry:` section; the cap may not be below the base.
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        baseSeconds = try keys["base_seconds"]?.double(default: baseSeconds) ?? baseSeconds
        capSeconds = try keys["cap_seconds"]?.double(default: capSeconds) ?? capSeconds
        guard capSeconds >= baseSeconds else {
            throw node.child("cap_seconds").error("must not be below retry.base_seconds")
        }
    }
}

extension AgentConfiguration.CircuitBreaker {
    /// The `circuit_breaker:` section.
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        failureThreshold = try keys["failure_threshold"]?.int(default: failureThreshold) ?? failureThreshold
        openSeconds = try keys["open_seconds"]?.double(default: openSeconds) ?? openSeconds
    }
}

extension AgentConfiguration.OutboxSettings {
    /// The `outbox:` section.
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        maxBytes = try keys["max_bytes"]?.int(default: maxBytes) ?? maxBytes
    }
}
