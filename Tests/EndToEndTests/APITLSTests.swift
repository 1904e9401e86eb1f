import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// TLS on the API (`api.tls.*`) with certificates the `openssl` tool makes in the test: the real
/// `hostmeter run` answers HTTPS with them, refuses plain HTTP, and with `client_ca_file` refuses a
/// client without a certificate from that CA; `hostmeter config check` and `hostmeter run` refuse
/// files that cannot work, naming the key and the file.
@Suite(.serialized, .timeLimit(.minutes(3))) struct APITLSTests {
    // MARK: Serving

    @Test func httpsAnswersWithTheCAAndPlainHTTPIsRefused() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let agent = try tlsAgent(pki, tls: ["certificate_file": pki.path("server.pem"), "key_file": pki.path("server.key")])
        defer { agent.kill() }
        let port = try await agent.apiPort()

        let trusted = try await Self.status("https://127.0.0.1:\(port)/health", trustRoots: pki.path("ca.pem"))
        #expect(trusted == 200)
        // The server's certificate is the one from the files: a client trusting another CA refuses it.
        let untrusted = await #expect(throws: (any Error).self) {
            try await Self.status("https://127.0.0.1:\(port)/health", trustRoots: pki.path("other-ca.pem"))
        }
        #expect("\(String(describing: untrusted))".contains("CERTIFICATE_VERIFY_FAILED"), "\(String(describing: untrusted))")
        // Plain HTTP gets no answer from a TLS listener.
        let plain = await #expect(throws: (any Error).self) {
            try await Self.status("http://127.0.0.1:\(port)/health", trustRoots: nil)
        }
        #expect("\(String(describing: plain))".contains("remoteConnectionClosed"), "\(String(describing: plain))")
        #expect(agent.isRunning, "the agent survives the failed handshakes; stderr:\n\(agent.stderr)")
    }

    @Test func mutualTLSNeedsAClientCertificateFromTheClientCA() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let agent = try tlsAgent(
            pki, tls: ["certificate_file": pki.path("server.pem"), "key_file": pki.path("server.key"),
                       "client_ca_file": pki.path("ca.pem")])
        defer { agent.kill() }
        let port = try await agent.apiPort()
        let url = "https://127.0.0.1:\(port)/health"
        let ca = pki.path("ca.pem")

        // The server's alerts say why: no certificate, or one from a CA it does not know.
        let withoutCertificate = await #expect(throws: (any Error).self, "a client without a certificate is refused") {
            try await Self.status(url, trustRoots: ca)
        }
        #expect("\(String(describing: withoutCertificate))".contains("CERTIFICATE_REQUIRED"),
                "\(String(describing: withoutCertificate))")
        let otherCA = await #expect(throws: (any Error).self, "a client certificate from another CA is refused") {
            try await Self.status(url, trustRoots: ca, certificate: (pki.path("other-client.pem"), pki.path("other-client.key")))
        }
        #expect("\(String(describing: otherCA))".contains("UNKNOWN_CA"), "\(String(describing: otherCA))")
        let withCertificate = try await Self.status(url, trustRoots: ca, certificate: (pki.path("client.pem"), pki.path("client.key")))
        #expect(withCertificate == 200)
    }

    /// The status of a GET through a client of its own trusting `trustRoots` (a PEM file),
    /// presenting `certificate` (PEM certificate and key files) when given.
    @discardableResult
    static func status(_ url: String, trustRoots: String?, certificate: (String, String)? = nil) async throws -> Int {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let trustRoots { tls.trustRoots = .file(trustRoots) }
        if let certificate {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate.0).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: certificate.1, format: .pem))
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
        do {
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(3))
            _ = try await response.body.collect(upTo: 1 << 20)
            try await client.shutdown()
            return Int(response.status.code)
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    // MARK: Validation

    /// A TLS setting that cannot work, what `api.tls` says, and what the error must name.
    struct BadFiles: Sendable, CustomStringConvertible {
        var description: String
        /// `api.tls` keys; `{pki}` stands for the directory of the test's certificates.
        var keys: [String: String]
        var key: String
        var file: String?
        var message: String
    }

    static let badFiles: [BadFiles] = [
        BadFiles(
            description: "certificate missing", keys: ["certificate_file": "{pki}/missing.pem", "key_file": "{pki}/server.key"],
            key: "api.tls.certificate_file", file: "{pki}/missing.pem", message: "cannot read"),
        BadFiles(
            description: "certificate not PEM", keys: ["certificate_file": "{pki}/garbage.txt", "key_file": "{pki}/server.key"],
            key: "api.tls.certificate_file", file: "{pki}/garbage.txt", message: "not a PEM certificate"),
        BadFiles(
            description: "key not PEM", keys: ["certificate_file": "{pki}/server.pem", "key_file": "{pki}/garbage.txt"],
            key: "api.tls.key_file", file: "{pki}/garbage.txt", message: "not a PEM private key"),
        BadFiles(
            description: "certificate as key", keys: ["certificate_file": "{pki}/server.pem", "key_file": "{pki}/server.pem"],
            key: "api.tls.key_file", file: "{pki}/server.pem", message: "not a PEM private key"),
        BadFiles(
            description: "key of another certificate",
            keys: ["certificate_file": "{pki}/server.pem", "key_file": "{pki}/client.key"],
            key: "api.tls.key_file", file: "{pki}/client.key", message: "does not match the certificate"),
        BadFiles(
            description: "key missing", keys: ["certificate_file": "{pki}/server.pem", "key_file": "{pki}/missing.key"],
            key: "api.tls.key_file", file: "{pki}/missing.key", message: "cannot read"),
        BadFiles(
            description: "no key file", keys: ["certificate_file": "{pki}/server.pem"],
            key: "api.tls.key_file", file: nil, message: "must be set"),
        BadFiles(
            description: "no certificate file", keys: ["key_file": "{pki}/server.key"],
            key: "api.tls.certificate_file", file: nil, message: "must be set"),
        BadFiles(
            description: "client CA without a certificate", keys: ["client_ca_file": "{pki}/ca.pem"],
            key: "api.tls.certificate_file", file: nil, message: "must be set"),
        BadFiles(
            description: "client CA not PEM",
            keys: ["certificate_file": "{pki}/server.pem", "key_file": "{pki}/server.key", "client_ca_file": "{pki}/garbage.txt"],
            key: "api.tls.client_ca_file", file: "{pki}/garbage.txt", message: "not a PEM certificate"),
    ]

    @Test(arguments: badFiles)
    func configCheckRefusesTLSFilesThatCannotWork(_ bad: BadFiles) throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let config = try pki.writeConfig(bad.keys.mapValues { $0.replacingOccurrences(of: "{pki}", with: pki.directory.path) })
        let result = try hostmeter("config", "check", config)
        #expect(result.status == 2, "\(bad): \(result.stderr)")
        #expect(result.stderr.contains("\(bad.key): "), "\(bad): the error names the key: \(result.stderr)")
        #expect(result.stderr.contains(bad.message), "\(bad): \(result.stderr)")
        if let file = bad.file?.replacingOccurrences(of: "{pki}", with: pki.directory.path) {
            #expect(result.stderr.contains(file), "\(bad): the error names the file: \(result.stderr)")
        }
    }

    @Test func runExitsTwoOnAKeyThatDoesNotMatchItsCertificate() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let config = try pki.writeConfig(["certificate_file": pki.path("server.pem"), "key_file": pki.path("client.key")])
        let result = try run(TestPaths.hostmeter, ["run", "--config", config], timeout: 30)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("api.tls.key_file"), "\(result.stderr)")
        #expect(result.stderr.contains(pki.path("client.key")), "\(result.stderr)")
    }

    @Test func goodTLSFilesPassConfigCheck() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let config = try pki.writeConfig([
            "certificate_file": pki.path("server.pem"), "key_file": pki.path("server.key"), "client_ca_file": pki.path("ca.pem"),
        ])
        let result = try hostmeter("config", "check", config)
        #expect(result.status == 0, "\(result.stderr)")
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed, and a second CA
/// with its own client certificate, made by the `openssl` tool in a scratch directory (EC P-256,
/// valid for two days).
struct TestPKI {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "this is not PEM\n".write(toFile: path("garbage.txt"), atomically: true, encoding: .utf8)
        try "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
            .write(toFile: path("server.ext"), atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
            .write(toFile: path("client.ext"), atomically: true, encoding: .utf8)
        try makeCA("ca", name: "hostmeter test CA")
        try makeCA("other-ca", name: "another CA")
        try makeLeaf("server", name: "127.0.0.1", ca: "ca", extensions: "server.ext", serial: 2)
        try makeLeaf("client", name: "hostmeter test client", ca: "ca", extensions: "client.ext", serial: 3)
        try makeLeaf("other-client", name: "another client", ca: "other-ca", extensions: "client.ext", serial: 4)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    /// A configuration file with `api.tls` set to `tls` (and a state directory here).
    func writeConfig(_ tls: [String: String]) throws -> String {
        let keys = tls.sorted { $0.key < $1.key }.map { "    \($0.key): \($0.value)" }.joined(separator: "\n")
        let config = path("hostmeter.yaml")
        try """
            interval_seconds: 2
            sample_seconds: 1
            state_dir: \(path("state"))
            api:
              listen: 127.0.0.1:0
              tls:
            \(keys)
            """.write(toFile: config, atomically: true, encoding: .utf8)
        return config
    }

    private func makeCA(_ name: String, name subject: String) throws {
        try openssl([
            "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", path("\(name).key"), "-out", path("\(name).pem"), "-days", "2", "-subj", "/CN=\(subject)",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
    }

    private func makeLeaf(_ name: String, name subject: String, ca: String, extensions: String, serial: Int) throws {
        try openssl([
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(subject)",
        ])
        try openssl([
            "x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).pem"), "-CAkey", path("\(ca).key"),
            "-set_serial", "\(serial)", "-days", "2", "-out", path("\(name).pem"), "-extfile", path(extensions),
        ])
    }

    private func openssl(_ arguments: [String]) throws {
        let result = try run(URL(fileURLWithPath: "/usr/bin/env"), ["openssl"] + arguments, timeout: 30)
        guard result.status == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [
                NSLocalizedDescriptionKey: "openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(result.stderr)",
            ])
        }
    }
}

/// `hostmeter run` with `api.tls` set to `tls` on a free loopback port, its stderr in the PKI's
/// directory.
private func tlsAgent(_ pki: TestPKI, tls: [String: String]) throws -> AgentChild {
    let config = try pki.writeConfig(tls)
    let stderrFile = pki.directory.appendingPathComponent("stderr-\(UUID().uuidString).log")
    return try AgentChild(configFile: URL(fileURLWithPath: config), stderrFile: stderrFile)
}
