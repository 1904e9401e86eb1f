import Foundation

extension AgentConfiguration {
    /// `identity:`: the agent's Ed25519 signing key.
    public struct Identity: Sendable, Equatable {
        /// The key's PEM file; nil: `identity.pem` in `state_dir`.
        public var keyFile: String?
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
