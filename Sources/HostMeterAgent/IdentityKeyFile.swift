import Foundation
public import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// The file of the agent's Ed25519 identity key (`identity.key_file`, by default `identity.pem` in
/// `state_dir`): PKCS #8 PEM, readable and writable by its owner only.
///
/// The agent makes the key at its first start and keeps it for life: every commitment it signs is
/// checked against the public key a billing team recorded, so a key that changed unannounced makes
/// every later signature fail. A new key is therefore written whole and fsynced, with its
/// directory, before it signs anything. A key file that others may read is refused, as ssh refuses
/// such a private key: whoever can read it can sign usage as this host.
public enum IdentityKeyFile {
    /// The largest key file read: a PKCS #8 PEM Ed25519 key is 119 bytes.
    static let maxBytes = 16 * 1024

    /// The key at `path`, made (mode 0600) when no file is there. `created` says which.
    public static func loadOrCreate(path: String) throws(IdentityKeyError) -> (identity: SigningIdentity, created: Bool) {
        if let identity = try load(path: path, missingIsNil: true) { return (identity, false) }
        let identity = SigningIdentity.generate()
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let error = errno
            // Another process made it meanwhile: that one is the key.
            if error == EEXIST, let made = try load(path: path, missingIsNil: true) { return (made, false) }
            throw failure(path, "cannot create the key file", error)
        }
        do throws(IdentityKeyError) {
            // The umask may have taken bits from 0600; set them exactly.
            guard fchmod(descriptor, 0o600) == 0 else { throw failure(path, "cannot set its mode to 0600", errno) }
            let bytes = Array(identity.pem.utf8)
            var written = 0
            while written < bytes.count {
                let count = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                guard count > 0 else {
                    if count < 0, errno == EINTR { continue }
                    throw failure(path, "cannot write the key", errno)
                }
                written += count
            }
            guard fsync(descriptor) == 0 else { throw failure(path, "cannot fsync the key", errno) }
        } catch {
            close(descriptor)
            unlink(path)
            throw error
        }
        close(descriptor)
        syncDirectory(of: path)
        return (identity, true)
    }

    /// The key at `path`; a missing file is an error naming it (or nil with `missingIsNil`).
    /// `ownedByUs`: the file must belong to this process's user, as the agent's own key does
    /// (`hostmeter identity`, run by root to show the key of an agent that runs as another user,
    /// passes false).
    public static func load(
        path: String, missingIsNil: Bool = false, ownedByUs: Bool = true
    ) throws(IdentityKeyError) -> SigningIdentity? {
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else {
            let error = errno
            if error == ENOENT, missingIsNil { return nil }
            if error == ELOOP { throw IdentityKeyError("a symbolic link; give the file itself", path: path) }
            if error == ENOENT {
                throw IdentityKeyError("no such file (the agent makes it at its first start)", path: path)
            }
            throw failure(path, "cannot open it", error)
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw failure(path, "cannot stat it", errno) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw IdentityKeyError("not a regular file", path: path) }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw IdentityKeyError("mode \(String(mode, radix: 8)) gives its group or others access; only its owner may have any (chmod 600)", path: path)
        }
        guard !ownedByUs || info.st_uid == geteuid() else {
            throw IdentityKeyError("owned by uid \(info.st_uid), not by the agent's (\(geteuid()))", path: path)
        }
        guard info.st_size <= maxBytes else {
            throw IdentityKeyError("\(info.st_size) bytes, more than a key file holds (\(maxBytes))", path: path)
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var read = 0
        while read < bytes.count {
            let count = bytes[read...].withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else {
                if count < 0, errno == EINTR { continue }
                if count == 0 { break }
                throw failure(path, "cannot read it", errno)
            }
            read += count
        }
        guard let text = String(validating: bytes[..<read], as: UTF8.self) else {
            throw IdentityKeyError("not text (a PEM file is)", path: path)
        }
        do {
            return try SigningIdentity(pem: text)
        } catch {
            throw IdentityKeyError("\(error.reason)", path: path)
        }
    }

    private static func syncDirectory(of path: String) {
        let directory = (path as NSString).deletingLastPathComponent
        let descriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }

    private static func failure(_ path: String, _ what: String, _ error: Int32) -> IdentityKeyError {
        IdentityKeyError("\(what): \(String(cString: strerror(error)))", path: path)
    }
}
