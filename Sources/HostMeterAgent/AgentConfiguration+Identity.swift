import Foundation

extension AgentConfiguration {
    /// `identity:`: the agent's Ed25519 signing key.
    public struct Identity: Sendable, Equatable {
        /// The key's PEM file; nil: `identity.pem` in `state_dir`.
        public var keyFile: String?
    }

    /// `commitments:`: how often the agent signs a commitment over its chained events (UsageEvent 1.1).
    public struct Commitments: Sendable, Equatable {
        public var maxEvents = 1000
        public var maxSeconds = 300
    }

    /// The identity key's file.
    public var identityKeyPath: String {
        identity.keyFile ?? (stateDirectory as NSString).appendingPathComponent("identity.pem")
    }
}

extension AgentConfiguration.Identity {
    /// The `identity:` section.
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        if let file = keys["key_file"] {
            keyFile = try file.optionalString()
            if keyFile?.isEmpty == true { throw file.error("must not be empty; null: identity.pem in state_dir") }
        }
    }
}

extension AgentConfiguration.Commitments {
    /// The `commitments:` section.
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        maxEvents = try keys["max_events"]?.int(default: maxEvents) ?? maxEvents
        maxSeconds = try keys["max_seconds"]?.int(default: maxSeconds) ?? maxSeconds
    }
}
