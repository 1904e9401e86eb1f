import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// An API address that is taken ends the agent with an error instead of leaving it half started:
/// before the fix, the supervisor waited forever for a port that never came and the agent hung.
@Suite struct APIBindFailureTests {
    @Test func aTakenPortEndsTheAgentWithAnError() throws {
        // Hold a loopback port with a listening socket of our own.
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(descriptor >= 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(descriptor, socketAddress, length) == 0 && listen(descriptor, 1) == 0
                    && getsockname(descriptor, socketAddress, &length) == 0
            }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bind-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("hostmeter.yaml")
        try """
            interval_seconds: 2
            sample_seconds: 1
            state_dir: \(directory.path)
            api:
              listen: 127.0.0.1:\(port)
            """.write(to: config, atomically: true, encoding: .utf8)

        let started = Date()
        let result = try run(TestPaths.hostmeter, ["run", "--config", config.path], timeout: 30)
        #expect(Date().timeIntervalSince(started) < 25, "the agent hung instead of exiting")
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("stopped on an error"), "\(result.stderr)")
    }
}
