import ArgumentParser
import Foundation
import HostMeterAgent
import UsageModel

/// `hostmeter identity`: the public half of the agent's signing key, read from its key file.
struct IdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Show the public key the agent signs its usage commitments with.",
        discussion: """
            Reads the key of identity.key_file (by default identity.pem in state_dir), which the agent \
            makes at its first start, and prints its public half as JSON (algorithm, key_id, \
            public_key in base64, public_key_pem, host_id, key_file), or with --pem the public key alone. \
            Nothing is made or changed. Exit 1 when there is no key or it cannot be read, 2 on a bad \
            configuration.
            """)

    @Option(help: "The configuration file whose identity.key_file (or state_dir) names the key.")
    var config = AgentConfiguration.defaultPath

    @Option(help: "The key file, instead of the configuration's.")
    var keyFile: String?

    @Flag(help: "Print the public key as PEM (SPKI) only.")
    var pem = false

    func run() throws {
        var hostID = AgentConfiguration.defaultHostID
        let path: String
        if let keyFile {
            path = keyFile
            // The host the key is for, when the configuration can tell.
            if let configuration = try? AgentConfiguration.load(path: config) { hostID = configuration.hostID }
        } else {
            do {
                let configuration = try AgentConfiguration.load(path: config)
                hostID = configuration.hostID
                path = configuration.identityKeyPath
            } catch {
                FileHandle.standardError.write(Data("hostmeter: \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
        let identity: SigningIdentity?
        do {
            identity = try IdentityKeyFile.load(path: path, ownedByUs: false)
        } catch {
            FileHandle.standardError.write(Data("hostmeter: \(error)\n".utf8))
            throw ExitCode.failure
        }
        guard let identity else { throw ExitCode.failure }
        if pem {
            print(identity.publicIdentity.publicKeyPEM, terminator: "")
        } else {
            print(String(decoding: identity.publicIdentity.document(hostID: hostID, keyFile: path), as: UTF8.self))
        }
    }
}
