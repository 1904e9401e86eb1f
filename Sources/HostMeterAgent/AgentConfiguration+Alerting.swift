import Foundation
import Metering
import Yams

extension AgentConfiguration {
    /// `alerting:`: where threshold alerts are pushed besides the outbox.
    public struct Alerting: Sendable, Equatable {
        public var alertmanagerURL: String?
    }

    /// `thresholds:`. Rules decode through the type the API uses, so both refuse the same things;
    /// errors name the rule's place and field (`thresholds[2].clear`) and the line.
    static func thresholds(_ node: ConfigNode) throws(ConfigurationError) -> [ThresholdRule] {
        var rules: [ThresholdRule] = []
        for item in try node.sequence() {
            guard let yaml = item.node else { throw item.error("expected a rule") }
            do {
                rules.append(try YAMLDecoder().decode(ThresholdRule.self, from: yaml))
            } catch {
                let ruleError = (error as? ThresholdRuleError)
                    ?? (error as? DecodingError).map(ThresholdRule.describe)
                    ?? ThresholdRuleError(field: "", message: "\(error)")
                let field = ruleError.field.split(separator: ".").first.map(String.init)
                let located = field.map { item.child($0) }.flatMap { $0.node == nil ? nil : $0 } ?? item
                throw ConfigurationError(
                    file: item.file, line: located.line, key: ruleError.within(item.key).field, message: ruleError.message)
            }
        }
        do {
            try ThresholdRule.validate(rules)
        } catch {
            throw ConfigurationError(file: node.file, line: node.line, key: error.within(node.key).field, message: error.message)
        }
        return rules
    }
}

extension AgentConfiguration.Alerting {
    /// The `alerting:` section; the Alertmanager URL must be http:// or https:// with a host.
    init(_ node: ConfigNode) throws(ConfigurationError) {
        self.init()
        let keys = try node.section()
        alertmanagerURL = try keys["alertmanager_url"]?.optionalString()
        if let url = alertmanagerURL {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                throw (keys["alertmanager_url"] ?? node).error("must be an http:// or https:// URL")
            }
        }
    }
}
