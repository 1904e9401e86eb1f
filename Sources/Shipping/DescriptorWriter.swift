#if canImport(Glibc)
import Glibc
#endif

/// Writes to a file descriptor and reports failure instead of trapping.
///
/// Foundation's `FileHandle.write(_:)` traps on any error, so a reader that goes away from the
/// agent's stdout or stderr (EPIPE once SIGPIPE is ignored, as under systemd) would end the agent.
/// Here a failed write is an answer: the stdout sink retries its batch, the log handler counts the
/// line it dropped.
public enum DescriptorWriter {
    /// How long a non-blocking descriptor that is full (EAGAIN) is waited for, in all.
    static let fullWaitMilliseconds: Int32 = 1000

    /// Writes all of `bytes` to `descriptor`: again after EINTR, and after waiting (up to a second
    /// in all) when a non-blocking descriptor is full. Returns the bytes written and, when it
    /// stopped short, the errno that stopped it.
    public static func write(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) -> (written: Int, error: Int32?) {
        guard let base = bytes.baseAddress else { return (0, nil) }
        var offset = 0
        var waited: Int32 = 0
        // Each round writes at least one byte, or waits for room (bounded), or stops.
        while offset < bytes.count {
            let count = Glibc.write(descriptor, base + offset, bytes.count - offset)
            if count > 0 {
                offset += count
                continue
            }
            let error = count < 0 ? errno : EIO
            if error == EINTR { continue }
            if error == EAGAIN, waited < fullWaitMilliseconds {
                var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&ready, 1, 100)
                waited += 100
                continue
            }
            return (offset, error)
        }
        return (offset, nil)
    }

    /// Writes `text` to `descriptor`; whether all of it was written.
    @discardableResult
    public static func write(_ text: String, to descriptor: Int32) -> Bool {
        var text = text
        return text.withUTF8 { write(UnsafeRawBufferPointer($0), to: descriptor).error == nil }
    }

    /// The message of an errno, e.g. "Broken pipe".
    public static func describe(_ error: Int32) -> String {
        String(cString: strerror(error))
    }
}
