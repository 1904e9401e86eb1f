extension AgentConfiguration {
    /// `host:`: the host itself as one metered instance (host mode), and whose it is.
    public struct Host: Sendable, Equatable {
        /// Whether the host itself is metered as one instance (host mode), beside any VMs.
        public var enabled = true
        /// nil: the host_id.
        public var instanceID: String?
        public var userID = "operator"
        public var orgID: String?
    }
}

extension AgentConfiguration.Host {
    /// The `host:` section; `hostID` is the instance id it defaults to.
    init(_ node: ConfigNode, hostID: String) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        enabled = try keys["enabled"]?.bool(default: enabled) ?? enabled
        if let instance = keys["instance_id"], !instance.isNull {
            instanceID = try AgentConfiguration.identifier(instance, default: hostID)
        }
        if let user = keys["user_id"] { userID = try AgentConfiguration.identifier(user, default: userID) }
        if let org = keys["org_id"], !org.isNull { orgID = try AgentConfiguration.identifier(org, default: "") }
    }
}
