import Foundation
import Metering

/// `PUT /thresholds`'s body: `{"rules": [...]}`, the shape GET answers with; `source` and
/// `updated_at` from a GET are accepted and ignored, so a GET's body can be edited and put back.
enum ThresholdRulesRequest {
    struct Body: Decodable {
        var rules: [ThresholdRule]

        private struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            let container: KeyedDecodingContainer<Key>
            do {
                container = try decoder.container(keyedBy: Key.self)
            } catch {
                throw ThresholdRuleError(field: "", message: "the body must be an object {\"rules\": [...]}")
            }
            for key in container.allKeys where !["rules", "source", "updated_at"].contains(key.stringValue) {
                throw ThresholdRuleError(field: key.stringValue, message: "unknown field; the body is {\"rules\": [...]}")
            }
            guard let key = Key(stringValue: "rules"), container.contains(key) else {
                throw ThresholdRuleError(field: "rules", message: "is required")
            }
            do {
                rules = try container.decode([ThresholdRule].self, forKey: key)
            } catch let error as ThresholdRuleError {
                throw error
            } catch {
                throw ThresholdRuleError(field: "rules", message: "must be an array of rule objects")
            }
        }
    }

    static func decode(_ data: Data) throws(ThresholdRuleError) -> [ThresholdRule] {
        let rules: [ThresholdRule]
        do {
            rules = try JSONDecoder().decode(Body.self, from: data).rules
        } catch let error as ThresholdRuleError {
            throw error
        } catch let DecodingError.dataCorrupted(context) {
            throw ThresholdRuleError(field: "", message: "malformed JSON: \(Self.reason(context))")
        } catch let error as DecodingError {
            throw ThresholdRule.describe(error)
        } catch {
            throw ThresholdRuleError(field: "", message: "malformed JSON: \(error)")
        }
        do {
            try ThresholdRule.validate(rules)
        } catch {
            throw error.within("rules")
        }
        return rules
    }

    private static func reason(_ context: DecodingError.Context) -> String {
        if let underlying = context.underlyingError as? NSError,
            let detail = underlying.userInfo[NSDebugDescriptionErrorKey] as? String
        {
            return detail
        }
        return context.debugDescription
    }
}
