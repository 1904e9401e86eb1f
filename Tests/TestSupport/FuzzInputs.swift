public import Foundation

/// One input a fuzz target broke something with, kept under Tests/Fixtures/fuzz/<harness>/<target>/
/// (the folder is the target's name): fed again to the target's entry point by the
/// `FuzzRegressionTests` of the test target that links it.
public struct FuzzInput: Sendable, CustomStringConvertible {
    /// The harness folder: `probes` or `agent`, as fuzz/probes and fuzz/agent.
    public var harness: String
    /// The fuzz target's name.
    public var target: String
    /// The file's name: what the input is.
    public var name: String

    public init(harness: String, target: String, name: String) {
        self.harness = harness
        self.target = target
        self.name = name
    }

    /// Tests/Fixtures/fuzz/<harness>: where the kept inputs of one harness's targets lie.
    public static func folder(harness: String) -> String {
        TestPaths.fixtures.appendingPathComponent("fuzz").appendingPathComponent(harness).path
    }

    public var path: String { Self.folder(harness: harness) + "/" + target + "/" + name }
    public var url: URL { URL(fileURLWithPath: path) }
    /// "target/name", as a parameterized test names its case.
    public var description: String { target + "/" + name }

    public func bytes() throws -> [UInt8] { Array(try Data(contentsOf: url)) }

    /// Every kept input of `harness`'s targets, sorted by target and name; files beside the
    /// target folders (a README) are no inputs.
    public static func all(harness: String) -> [FuzzInput] {
        let folder = folder(harness: harness)
        let files = FileManager.default
        let targets = ((try? files.contentsOfDirectory(atPath: folder)) ?? []).filter { target in
            var isDirectory: ObjCBool = false
            return files.fileExists(atPath: folder + "/" + target, isDirectory: &isDirectory) && isDirectory.boolValue
        }
        return targets.sorted().flatMap { target in
            ((try? files.contentsOfDirectory(atPath: folder + "/" + target)) ?? []).sorted().map {
                FuzzInput(harness: harness, target: target, name: $0)
            }
        }
    }
}
