#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// libFuzzer's entry points, shared by the fuzz binaries (scripts/fuzz.sh builds one per harness
// folder: fuzz/probes, fuzz/agent). Each binary holds several targets, declared by its folder as
// `FuzzTargets.all`; the name it is run under picks one: scripts/fuzz.sh links `fuzz-<target>` to
// it (`fuzz-stat`, `fuzz-config`…), so each target has its own corpus, statistics and crash files
// while the code under test is built once.

/// One fuzz target: its name, and what it does with one input.
struct FuzzTarget: Sendable {
    let name: String
    let run: @Sendable ([UInt8]) -> Void
}

/// `precondition` that prints its message in an optimized build too (there `precondition` traps
/// silently), so a fuzzer's log says which promise the code under test broke.
func check(_ condition: Bool, _ message: @autoclosure () -> String = "", line: UInt = #line) {
    if !condition { fatalError("fuzz check failed: \(message())", line: line) }
}

/// The target picked in `LLVMFuzzerInitialize`.
///
/// Unsafe global state, and safe here: libFuzzer calls the initializer once, before any input and
/// on its one fuzzing thread, and only reads it afterwards.
nonisolated(unsafe) private var selected: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>
) -> CInt {
    let program = argv.pointee[0].map { String(cString: $0) } ?? ""
    let base = program.split(separator: "/").last.map(String.init) ?? program
    let prefix = "fuzz-"
    guard base.hasPrefix(prefix) else {
        // Run under its own name: list the targets, one a line, for scripts/fuzz.sh.
        for target in FuzzTargets.all { print(target.name) }
        exit(0)
    }
    let name = String(base.dropFirst(prefix.count))
    guard let target = FuzzTargets.all.first(where: { $0.name == name }) else {
        print("no fuzz target '\(name)'; known: \(FuzzTargets.all.map(\.name).joined(separator: ", "))")
        exit(2)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    // libFuzzer passes a valid pointer to `size` bytes; for an empty input it may be null.
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    selected!.run(bytes)
    return 0
}
