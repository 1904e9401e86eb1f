import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Probes

struct FileReaderSmallFilesTests {
    @Test(arguments: [0, 1, 1023, 1024, 1025, 5000, 70000])
    func readsWholeFilesOnEitherSideOfTheStackBuffer(size: Int) throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        let text = String((0..<size).map { Character(UnicodeScalar(UInt8(65 + $0 % 26))) })
        try tree.write("file", text)
        #expect(try FileReader.readSmall(tree.root + "/file") == Array(text.utf8))
        guard let directory = try OpenDirectory.open(tree.root) else {
            Issue.record("cannot open \(tree.root)")
            return
        }
        #expect(try directory.read("file") == Array(text.utf8))
    }

    @Test func aFileOverTheLimitIsRefused() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.write("big", String(repeating: "x", count: 5000))
        #expect(throws: ProbeError.tooLarge(path: tree.root + "/big", limit: 2048)) {
            try FileReader.readSmall(tree.root + "/big", limit: 2048)
        }
    }

    @Test func aMissingFileIsUnreadableWithENOENTWhichCountsAsMissing() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        do throws(ProbeError) {
            _ = try FileReader.readSmall(tree.root + "/nothing")
            Issue.record("expected an error")
        } catch {
            #expect(error == .unreadable(path: tree.root + "/nothing", errno: ENOENT))
            #expect(error.isMissing)
        }
        guard let directory = try OpenDirectory.open(tree.root) else {
            Issue.record("cannot open \(tree.root)")
            return
        }
        #expect(try directory.read("nothing") == nil)
    }

    @Test func openingWhatIsNotADirectoryGivesNil() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.write("file", "x")
        func opens(_ path: String) throws -> Bool { try OpenDirectory.open(path) != nil }
        #expect(try opens(tree.root))
        #expect(try !opens(tree.root + "/file"))
        #expect(try !opens(tree.root + "/none"))
        #expect(try !opens(tree.root + "/file/below"))
    }

    @Test func otherErrorsAreNotMissing() {
        #expect(!ProbeError.unreadable(path: "/x", errno: EACCES).isMissing)
        #expect(!ProbeError.malformed(path: "/x", line: 1, reason: "r").isMissing)
        #expect(!ProbeError.invalid(path: "/x", reason: "r").isMissing)
        #expect(ProbeError.missing(path: "/x").isMissing)
        #expect(ProbeError.missing(path: "/x").path == "/x")
        #expect(ProbeError.invalid(path: "tap/0", reason: "bad").description == "tap/0: bad")
    }
}
