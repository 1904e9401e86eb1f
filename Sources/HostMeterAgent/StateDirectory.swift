import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The agent's state directory (`state_dir`): its database, lock file and, by default, the file
/// sink's events.
public enum StateDirectory {
    /// Creates `path` when it is missing, with mode 0700 — it holds usage, checkpoints and the
    /// instances registered over the API, the owner's alone — and any missing parent with 0755,
    /// whatever the umask (outside systemd, whose unit sets `UMask=0077`, the umask is often 0022
    /// or laxer). A directory that exists keeps its mode: systemd creates it with the unit's
    /// `StateDirectoryMode`, and an administrator may have chosen another.
    public static func create(_ path: String) throws(ConfigurationError) {
        let components = URL(fileURLWithPath: path).standardizedFileURL.pathComponents.filter { $0 != "/" }
        var prefix = ""
        for (index, component) in components.enumerated() {
            prefix += "/" + component
            let mode: mode_t = index == components.count - 1 ? 0o700 : 0o755
            if mkdir(prefix, mode) == 0 {
                // mkdir applied the umask, which can only have taken bits away: set them exactly.
                guard chmod(prefix, mode) == 0 else { throw failure(prefix, "cannot set its mode", errno) }
                continue
            }
            let error = errno
            var info = stat()
            guard error == EEXIST, stat(prefix, &info) == 0 else { throw failure(prefix, "cannot create it", error) }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw ConfigurationError(file: prefix, line: nil, key: "state_dir", message: "not a directory")
            }
        }
    }

    private static func failure(_ path: String, _ what: String, _ error: Int32) -> ConfigurationError {
        ConfigurationError(file: path, line: nil, key: "state_dir", message: "\(what): \(String(cString: strerror(error)))")
    }
}
