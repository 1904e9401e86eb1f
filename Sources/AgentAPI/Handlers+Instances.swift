import Foundation
import Hummingbird
import Metering
import RuntimeState

/// `/instances`: the registry of metered instances. Reading needs a token (a user token sees only
/// its own instances); `PUT` and `DELETE` need admin.
extension Handlers {
    /// One instance as `/instances` shows it: its manifest, where it comes from, and whether it
    /// was running at the latest sample (null before its first).
    struct InstanceBody: Encodable {
        var manifest: InstanceManifest
        var source: InstanceSource
        var running: Bool?

        enum CodingKeys: String, CodingKey { case source, file, running }

        func encode(to encoder: any Encoder) throws {
            try manifest.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch source {
            case .api:
                try container.encode("api", forKey: .source)
                try container.encodeNil(forKey: .file)
            case .file(let path):
                try container.encode("file", forKey: .source)
                try container.encode(path, forKey: .file)
            }
            try container.encode(running, forKey: .running)
        }
    }

    struct InstancesBody: Encodable {
        var instances: [InstanceBody]
        /// Manifest files that were refused (admin only; empty for a user token).
        var problems: [ManifestProblem]

        struct Problem: Encodable {
            var file: String
            var message: String
        }

        enum CodingKeys: String, CodingKey { case instances, problems }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(instances, forKey: .instances)
            try container.encode(problems.map { Problem(file: $0.file, message: $0.message) }, forKey: .problems)
        }
    }

    /// Whether each instance ran at the latest sample, by id: one pass over the snapshot, so a
    /// listing costs linear time in the number of instances.
    private func runningByID() -> [String: Bool] {
        let views = dependencies.state.snapshot.instances
        var running: [String: Bool] = [:]
        running.reserveCapacity(views.count)
        for view in views where !view.isHost {
            running[view.instanceID] = view.running
        }
        return running
    }

    private func body(_ instance: RegisteredInstance, running: [String: Bool]) -> InstanceBody {
        InstanceBody(manifest: instance.manifest, source: instance.source, running: running[instance.manifest.instanceID])
    }

    /// The instance named by the path, as the caller may see it: 404 for another user's.
    private func visibleInstance(_ id: String, context: APIRequestContext) throws -> RegisteredInstance {
        guard let instance = dependencies.instances.instance(id) else { throw APIError(.notFound, "no instance \"\(id)\"") }
        if let role = context.role, case .user = role, !role.isUser(instance.manifest.userID) {
            throw APIError(.notFound, "no instance \"\(id)\"")
        }
        return instance
    }

    func listInstances(_ request: Request, context: APIRequestContext) throws -> Response {
        var userID: String?
        for (key, value) in request.uri.queryParameters {
            guard key == "user_id" else {
                throw APIError(.badRequest, "unknown query parameter \"\(key)\"; known: user_id")
            }
            userID = String(value)
        }
        var instances = dependencies.instances.instances
        var problems = dependencies.instances.problems
        if case .user(let own)? = context.role {
            instances = instances.filter { $0.manifest.userID.utf8.elementsEqual(own.utf8) }
            problems = []
        }
        if let userID { instances = instances.filter { $0.manifest.userID.utf8.elementsEqual(userID.utf8) } }
        let running = runningByID()
        return APIRouter.json(InstancesBody(instances: instances.map { body($0, running: running) }, problems: problems))
    }

    func getInstance(_ request: Request, context: APIRequestContext) throws -> Response {
        let id = try context.parameters.require("id")
        let instance = try visibleInstance(id, context: context)
        let running = dependencies.state.snapshot.instances.first {
            !$0.isHost && $0.instanceID.utf8.elementsEqual(id.utf8)
        }?.running
        return APIRouter.json(InstanceBody(manifest: instance.manifest, source: instance.source, running: running))
    }

    func putInstance(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let data = try await Self.readJSONBody(request)
        let manifest: InstanceManifest
        do {
            manifest = try InstanceManifestRequest.decode(data, instanceID: id)
        } catch {
            throw APIError(.badRequest, "invalid manifest: \(error)")
        }
        let created: Bool
        let (instances, now) = (dependencies.instances, dependencies.now())
        let outcome = try await Self.blocking { Result { () throws(InstanceRegistryError) in try instances.put(manifest, now: now) } }
        do {
            created = try outcome.get()
        } catch let error {
            switch error {
            case .definedByFile, .reserved, .full, .equivalentID: throw APIError(.conflict, "\(error)")
            case .store(let storeError):
                dependencies.logger.error("cannot store instance", metadata: ["error": "\(storeError)"])
                throw APIError(.serviceUnavailable, "cannot store the instance: \(storeError)")
            }
        }
        dependencies.logger.notice(
            created ? "instance registered over the API" : "instance replaced over the API",
            metadata: ["instance.id": "\(id)", "user.id": "\(manifest.userID)", "peer": "\(context.peer)"])
        return APIRouter.json(
            status: created ? .created : .ok, InstanceBody(manifest: manifest, source: .api, running: nil))
    }

    func deleteInstance(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let existed: Bool
        let instances = dependencies.instances
        let outcome = try await Self.blocking { Result { () throws(InstanceRegistryError) in try instances.delete(id) } }
        do {
            existed = try outcome.get()
        } catch let error {
            switch error {
            case .definedByFile, .reserved, .full, .equivalentID: throw APIError(.conflict, "\(error)")
            case .store(let storeError):
                throw APIError(.serviceUnavailable, "cannot delete the instance: \(storeError)")
            }
        }
        guard existed else { throw APIError(.notFound, "no instance \"\(id)\" registered over the API") }
        dependencies.logger.notice(
            "instance removed over the API; its final period is billed with the next sample",
            metadata: ["instance.id": "\(id)", "peer": "\(context.peer)"])
        return Response(status: .noContent, headers: [.cacheControl: "no-store"])
    }
}
