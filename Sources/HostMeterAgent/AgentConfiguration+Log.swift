extension AgentConfiguration {
    public enum LogLevel: String, Sendable, CaseIterable { case trace, debug, info, notice, warning, error, critical }
    public enum LogFormat: String, Sendable, CaseIterable { case logfmt, json }

    /// `log:`: what the agent logs and how (a SIGHUP applies both).
    public struct Log: Sendable, Equatable {
        public var level: LogLevel = .info
        public var format: LogFormat = .logfmt
    }
}

extension AgentConfiguration.Log {
    /// The `log:` section.
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        level = try keys["level"]?.choice(default: level) ?? level
        format = try keys["format"]?.choice(default: format) ?? format
    }
}
