import Foundation
import Metering

/// `PUT /instances/{id}`'s body: a manifest; `instance_id` may be left out (the path gives it) but
/// must match the path when present. `source`, `file` and `running` from a GET are accepted and
/// ignored, so a GET's body can be edited and put back.
///
/// The body is decoded once, by `JSONDecoder`, as stored manifests are. (JSONSerialization, which
/// it went through before, drops a U+FEFF that starts a string or follows an escape, so
/// `"cgroup": "\u{FEFF}vm"` was stored as `vm` and a GET's body with such an id could not be put
/// back.)
enum InstanceManifestRequest {
    static func decode(_ data: Data, instanceID: String) throws(InstanceManifestError) -> InstanceManifest {
        do {
            return try JSONDecoder().decode(Body.self, from: data, configuration: instanceID).manifest
        } catch let error as InstanceManifestError {
            throw error
        } catch {
            throw InstanceManifestError(field: "", message: "malformed JSON")
        }
    }

    /// The body, decoded with the path's id as its configuration.
    private struct Body: DecodableWithConfiguration {
        var manifest: InstanceManifest

        private typealias Key = FieldKey

        init(from decoder: any Decoder, configuration instanceID: String) throws {
            let container: KeyedDecodingContainer<Key>
            do {
                container = try decoder.container(keyedBy: Key.self)
            } catch {
                throw InstanceManifestError(field: "", message: "the body must be a JSON object (a manifest)")
            }
            if container.contains(Key("instance_id")) {
                guard let given = try? container.decode(String.self, forKey: Key("instance_id")), given == instanceID else {
                    throw InstanceManifestError(field: "instance_id", message: "must be \"\(instanceID)\", the id in the path")
                }
            }
            manifest = try InstanceManifest(from: decoder, instanceID: instanceID, ignoring: ["source", "file", "running"])
        }
    }
}
