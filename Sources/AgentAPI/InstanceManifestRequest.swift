import Foundation
import Metering

/// `PUT /instances/{id}`'s body: a manifest; `instance_id` may be left out (the path gives it) but
/// must match the path when present. `source`, `file` and `running` from a GET are accepted and
/// ignored, so a GET's body can be edited and put back.
enum InstanceManifestRequest {
    static func decode(_ data: Data, instanceID: String) throws(InstanceManifestError) -> InstanceManifest {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw InstanceManifestError(field: "", message: "malformed JSON")
        }
        guard var fields = object as? [String: Any] else {
            throw InstanceManifestError(field: "", message: "the body must be a JSON object (a manifest)")
        }
        if let given = fields["instance_id"] {
            guard let text = given as? String, text == instanceID else {
                throw InstanceManifestError(field: "instance_id", message: "must be \"\(instanceID)\", the id in the path")
            }
        }
        fields["instance_id"] = instanceID
        for ignored in ["source", "file", "running"] { fields[ignored] = nil }
        let normalized: Data
        do {
            normalized = try JSONSerialization.data(withJSONObject: fields)
        } catch {
            throw InstanceManifestError(field: "", message: "malformed JSON")
        }
        return try InstanceManifest.decode(json: normalized)
    }
}
