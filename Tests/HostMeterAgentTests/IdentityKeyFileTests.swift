import Foundation
import HostMeterAgent
import Logging
import Testing
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// The identity key file: made once with mode 0600 and the same key every start after; refused,
/// naming the file and what is wrong, when anyone else may read it, it is a link, not a key, or
/// not a file; and a configuration's key that cannot be used stops the start (exit 2).
@Suite struct IdentityKeyFileTests {
    func mode(_ path: String) -> mode_t {
        var info = stat()
        _ = stat(path, &info)
        return info.st_mode & 0o777
    }

    @Test func theKeyIsMadeOnceOwnerOnlyAndKept() throws {
        let directory = try ScratchDirectory("identity")
        defer { directory.remove() }
        let path = directory.appendingPathComponent("identity.pem").path
        let (made, created) = try IdentityKeyFile.loadOrCreate(path: path)
        #expect(created)
        #expect(mode(path) == 0o600)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("-----BEGIN PRIVATE KEY-----\n") && text.hasSuffix("-----END PRIVATE KEY-----\n"))
        let (again, createdAgain) = try IdentityKeyFile.loadOrCreate(path: path)
        #expect(!createdAgain && again.publicIdentity == made.publicIdentity)
        #expect(try IdentityKeyFile.load(path: path)?.publicIdentity == made.publicIdentity)
    }

    @Test func aKeyFileThatIsNotTheOwnersAloneIsRefused() throws {
        let directory = try ScratchDirectory("identity")
        defer { directory.remove() }
        let path = directory.appendingPathComponent("identity.pem").path
        _ = try IdentityKeyFile.loadOrCreate(path: path)
        for loose: mode_t in [0o640, 0o604, 0o602, 0o660] {
            chmod(path, loose)
            #expect {
                _ = try IdentityKeyFile.loadOrCreate(path: path)
            } throws: { error in
                guard let error = error as? IdentityKeyError else { return false }
                return error.path == path && error.reason.contains("mode \(String(loose, radix: 8))")
                    && error.reason.contains("chmod 600")
            }
        }
        chmod(path, 0o400)
        #expect(try IdentityKeyFile.load(path: path) != nil)
    }

    @Test func whatIsNotAKeyFileIsRefusedSayingWhat() throws {
        let directory = try ScratchDirectory("identity")
        defer { directory.remove() }
        let key = directory.appendingPathComponent("identity.pem").path
        _ = try IdentityKeyFile.loadOrCreate(path: key)
        let link = directory.appendingPathComponent("link.pem").path
        symlink(key, link)
        let garbage = directory.appendingPathComponent("garbage.pem").path
        FileManager.default.createFile(atPath: garbage, contents: Data("hello\n".utf8), attributes: [.posixPermissions: 0o600])
        let huge = directory.appendingPathComponent("huge.pem").path
        FileManager.default.createFile(
            atPath: huge, contents: Data(repeating: 0x41, count: 20_000), attributes: [.posixPermissions: 0o600])
        let folder = directory.appendingPathComponent("folder.pem").path
        mkdir(folder, 0o700)
        let cases: [(String, String)] = [
            (link, "symbolic link"),
            (garbage, "not a PKCS #8 PEM private key"),
            (huge, "more than a key file holds"),
            (folder, "not a regular file"),
            (directory.appendingPathComponent("missing.pem").path, "no such file"),
        ]
        for (path, reason) in cases {
            #expect {
                _ = try IdentityKeyFile.load(path: path)
            } throws: { error in
                guard let error = error as? IdentityKeyError else { return false }
                return error.path == path && error.reason.contains(reason)
            }
        }
        // A missing file is made; the others are never replaced.
        for (path, _) in cases.dropLast() {
            #expect(throws: IdentityKeyError.self) { _ = try IdentityKeyFile.loadOrCreate(path: path) }
        }
        #expect(try String(contentsOfFile: garbage, encoding: .utf8) == "hello\n")
    }

    @Test func anAgentWhoseKeyCannotBeUsedDoesNotStart() throws {
        let directory = try ScratchDirectory("identity")
        defer { directory.remove() }
        var configuration = AgentConfiguration(hostID: "identity-test")
        configuration.stateDirectory = directory.appendingPathComponent("state").path
        configuration.identity.keyFile = directory.appendingPathComponent("loose.pem").path
        _ = try IdentityKeyFile.loadOrCreate(path: configuration.identityKeyPath)
        chmod(configuration.identityKeyPath, 0o644)
        #expect {
            _ = try Agent.build(configuration: configuration, logger: Logger(label: "test"))
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.key == "identity.key_file" && error.file == configuration.identityKeyPath
                && error.message.contains("mode 644")
        }
    }
}
