#if canImport(Glibc)
import Glibc
#endif

/// Gives back the code pages that only start-up used.
///
/// The binary's code is mapped from the file, and a page fault brings in its neighbours too
/// (fault-around, readahead), so after start-up — configuration, migrations, the first sample,
/// the server's set-up — tens of megabytes of code are resident that will not run again. They
/// are clean file pages: `MADV_DONTNEED` on the executable file mappings (`r-xp`: the binary's
/// code and that of the shared libraries it loads) drops them from this process's resident set
/// (the page cache keeps them), and what runs later faults back in at once. Only never-written,
/// executable file mappings are touched: a writable or relocated (RELRO) mapping would lose its
/// changes.
enum StartupPages {
    /// Advises away the code mappings of files; returns the bytes advised (0 if none or on
    /// any failure: this only ever saves memory, it never matters for correctness).
    @discardableResult
    static func release() -> Int {
        guard let maps = readFile("/proc/self/maps") else { return 0 }
        var advised = 0
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "r-xp", fields[5].hasPrefix("/") else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16),
                end > start, let address = UnsafeMutableRawPointer(bitPattern: start)
            else { continue }
            if madvise(address, Int(end - start), MADV_DONTNEED) == 0 { advised += Int(end - start) }
        }
        return advised
    }

    static func readFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while bytes.count < 16 << 20 {
            let count = read(descriptor, &chunk, chunk.count)
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
