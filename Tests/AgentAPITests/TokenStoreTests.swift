import AgentAPI
import Testing

@Suite struct TokenStoreTests {
    let adminDigest = TokenStore.digest(of: "s3cret-admin")
    let userDigest = TokenStore.digest(of: "alice-token")

    @Test func digestIsSHA256Hex() {
        // printf %s abc | sha256sum
        #expect(TokenStore.digest(of: "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func yamlAndJSONFilesGiveRoles() throws {
        let yaml = try TokenStore.parse("\"\(adminDigest)\": admin\n\(userDigest): \"user:alice\"\n")
        #expect(yaml.role(for: "s3cret-admin") == .admin)
        #expect(yaml.role(for: "alice-token") == .user("alice"))
        #expect(yaml.role(for: "nobody") == nil)
        #expect(yaml.role(for: "") == nil)
        let json = try TokenStore.parse("{\"\(adminDigest.uppercased())\": \"admin\"}")
        #expect(json.role(for: "s3cret-admin") == .admin)
        #expect(json.isEnabled)
    }

    /// A configured tokens file never turns authentication off: it holds a token or is refused.
    @Test(arguments: ["", "\n", "# no tokens yet\n", "{}", "{ }\n", "---\n", "null", "~"])
    func aFileWithoutTokensIsRefusedNamingIt(text: String) {
        do {
            let store = try TokenStore.parse(text, file: "/etc/hostmeter/tokens.yaml")
            Issue.record("accepted \(text.debugDescription) with \(store.count) tokens")
        } catch {
            #expect(error.description.hasPrefix("/etc/hostmeter/tokens.yaml: holds no token"), "\(error)")
        }
    }

    @Test func theMetricsRoleIsItsOwn() throws {
        let digest = TokenStore.digest(of: "prometheus-token")
        let store = try TokenStore.parse("\(digest): metrics\n")
        #expect(store.role(for: "prometheus-token") == .metrics)
        #expect(APIRole("metrics") == .metrics)
        #expect(APIRole("metrics")?.description == "metrics")
    }

    /// User ids are compared as bytes: canonically equivalent spellings are different users.
    @Test func userRolesCompareIDsAsBytes() {
        let decomposed = APIRole.user("e\u{301}ve")
        let precomposed = APIRole.user("\u{e9}ve")
        #expect("e\u{301}ve" == "\u{e9}ve")  // what String's == would say
        #expect(decomposed != precomposed)
        #expect(!decomposed.isUser("\u{e9}ve"))
        #expect(decomposed.isUser("e\u{301}ve"))
        #expect(APIRole.admin != .metrics)
    }

    @Test(arguments: [
        ("s3cret-admin: admin\n", "not a hex SHA-256 digest"),
        ("\"\(String(repeating: "a", count: 64))\": root\n", "must be admin, metrics or user:<user_id>"),
        ("\"\(String(repeating: "a", count: 64))\": \"user:\"\n", "must be admin, metrics or user:<user_id>"),
        ("- admin\n", "expected a map"),
        ("{ unclosed", "not valid YAML or JSON"),
    ])
    func badFilesAreRefusedWithoutEchoingTokens(text: String, message: String) {
        do {
            _ = try TokenStore.parse(text, file: "/etc/hostmeter/tokens.yaml")
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.contains(message), "\(error)")
            #expect(error.description.hasPrefix("/etc/hostmeter/tokens.yaml: "))
            #expect(!error.description.contains("s3cret-admin"))
        }
    }
}
