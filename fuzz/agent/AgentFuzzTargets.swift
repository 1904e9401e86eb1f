/// The fuzz targets of the agent's inputs other than /proc and /sys: the configuration file, the
/// manifest files of `instances_dir`, and the JSON bodies of the API with their stored forms.
///
/// Each target feeds the fuzzer's bytes to the function production calls on such an input. The
/// typed error it throws (`ConfigurationError`, `ThresholdRuleError`, `InstanceManifestError`,
/// `ListenAddressError`, a refused manifest file's `ManifestProblem`) is the expected answer to
/// broken input; a trap, a sanitizer report, a hang or a failed `check` is a bug. The checks state
/// what the agent relies on once an input is accepted: values inside their documented ranges,
/// and what is stored or served reading back as the same value.
///
/// scripts/fuzz.sh compiles this folder and fuzz/common into module AgentFuzz, against modules
/// built from the few source files these functions live in (Yams from its checkout, Probes
/// whole, and the Foundation-only files of UsageModel, Metering, AgentAPI and HostMeterAgent), so
/// it links no HTTP server, database or TLS. `@testable` reaches the request decoders, which are
/// internal to AgentAPI.
enum FuzzTargets {
    static let all: [FuzzTarget] = ConfigFuzzTargets.all + APIFuzzTargets.all + YAMLGuardFuzzTargets.all
}

/// The input as text. Invalid UTF-8 is repaired rather than dropped, so no input is wasted: the
/// repaired string is one the fuzzer could have written.
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
