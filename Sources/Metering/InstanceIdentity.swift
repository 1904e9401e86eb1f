/// Who an instance belongs to: what every event of it carries.
public struct InstanceIdentity: Sendable, Equatable, Hashable, Codable {
    public var instanceID: String
    public var userID: String
    public var orgID: String?

    public init(instanceID: String, userID: String, orgID: String? = nil) {
        self.instanceID = instanceID
        self.userID = userID
        self.orgID = orgID
    }

    enum CodingKeys: String, CodingKey {
        case instanceID = "instance_id", userID = "user_id", orgID = "org_id"
    }
}
