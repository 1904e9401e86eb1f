import Foundation
import NIOSSL

#if canImport(Glibc)
import Glibc
#endif

/// An `api.tls` setting that cannot work, naming its key and file.
public struct APITLSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The key whose value is wrong or missing: `api.tls.key_file`.
    public var key: String
    /// The file at fault; nil when a key is missing.
    public var file: String?
    public var message: String

    public var description: String {
        file.map { "\($0): \(key): \(message)" } ?? "\(key): \(message)"
    }
}

/// The API's TLS: the files read and checked once at start, so a certificate that cannot serve
/// stops `hostmeter run` and `hostmeter config check` with an error rather than every handshake.
public struct APITLS: Sendable {
    let configuration: TLSConfiguration
    /// Whether clients must present a certificate from `api.tls.client_ca_file`.
    public let requiresClientCertificate: Bool
    /// When the server's certificate expires, in seconds since the epoch.
    public let certificateNotAfter: Double

    /// PEM files are small; anything larger is not one.
    static let maxFileBytes = 1 << 20

    /// Reads and checks `files`: nil when TLS is off (no file set).
    public static func load(_ files: APITLSFiles) throws(APITLSError) -> APITLS? {
        guard !files.isEmpty else { return nil }
        guard let certificateFile = files.certificateFile else {
            throw APITLSError(
                key: "api.tls.certificate_file", file: nil,
                message: "must be set when api.tls.key_file or api.tls.client_ca_file is")
        }
        guard let keyFile = files.keyFile else {
            throw APITLSError(key: "api.tls.key_file", file: nil, message: "must be set with api.tls.certificate_file")
        }
        let chain = try certificates(in: certificateFile, key: "api.tls.certificate_file")
        let keyBytes = try read(keyFile, key: "api.tls.key_file")
        let privateKey: NIOSSLPrivateKey
        do {
            privateKey = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw APITLSError(
                key: "api.tls.key_file", file: keyFile,
                message: "not a PEM private key (an unencrypted key: -----BEGIN PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----…)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        // BoringSSL refuses a private key that is not the certificate's when it loads the pair.
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw APITLSError(
                key: "api.tls.key_file", file: keyFile, message: "does not match the certificate in \(certificateFile)")
        }
        if let clientCAFile = files.clientCAFile {
            let authorities = try certificates(in: clientCAFile, key: "api.tls.client_ca_file")
            configuration.trustRoots = .certificates(authorities)
            configuration.certificateVerification = .noHostnameVerification
            do {
                _ = try NIOSSLContext(configuration: configuration)
            } catch {
                throw APITLSError(
                    key: "api.tls.client_ca_file", file: clientCAFile, message: "cannot be used to verify clients: \(error)")
            }
        }
        return APITLS(
            configuration: configuration, requiresClientCertificate: files.clientCAFile != nil,
            certificateNotAfter: Double(chain[0].notValidAfter))
    }

    private static func certificates(in file: String, key: String) throws(APITLSError) -> [NIOSSLCertificate] {
        let bytes = try read(file, key: key)
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(bytes)
        } catch {
            certificates = []
        }
        guard !certificates.isEmpty else {
            throw APITLSError(key: key, file: file, message: "not a PEM certificate (-----BEGIN CERTIFICATE-----)")
        }
        return certificates
    }

    /// The whole file, up to `maxFileBytes`; errors say why in the system's words.
    private static func read(_ file: String, key: String) throws(APITLSError) -> [UInt8] {
        let descriptor = open(file, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw APITLSError(key: key, file: file, message: "cannot read: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while bytes.count <= maxFileBytes {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count == 0 { return bytes }
            if count < 0 {
                if errno == EINTR { continue }
                throw APITLSError(key: key, file: file, message: "cannot read: \(String(cString: strerror(errno)))")
            }
            bytes += buffer.prefix(count)
        }
        throw APITLSError(key: key, file: file, message: "larger than \(maxFileBytes) bytes: not a PEM file")
    }
}
