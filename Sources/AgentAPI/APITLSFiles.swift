/// `api.tls`: the PEM files the API's TLS is made of. All nil: plain HTTP.
public struct APITLSFiles: Sendable, Equatable {
    /// The server's certificate, followed by any intermediates (`api.tls.certificate_file`).
    public var certificateFile: String?
    /// The certificate's private key, unencrypted (`api.tls.key_file`).
    public var keyFile: String?
    /// CA certificates a client's certificate must chain to (`api.tls.client_ca_file`); set, a
    /// client without such a certificate is refused at the handshake (mutual TLS).
    public var clientCAFile: String?

    public init(certificateFile: String? = nil, keyFile: String? = nil, clientCAFile: String? = nil) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
    }

    public var isEmpty: Bool { certificateFile == nil && keyFile == nil && clientCAFile == nil }
}
