/// What went wrong talking to NVML. Texts from the library are nvmlErrorString's, unchanged.
public enum NVMLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// dlopen could not load the library: on a host without NVIDIA drivers this is the normal case.
    case libraryNotLoaded(path: String, reason: String)
    /// The library lacks an entry point hostmeter cannot work without.
    case missingSymbol(path: String, symbol: String)
    /// nvmlInit failed (no driver loaded, no permission, …).
    case initFailed(function: String, code: Int32, message: String)
    /// A call failed; `function` is the NVML entry point.
    case call(function: String, code: Int32, message: String)

    /// NVML's return code, where there is one.
    public var code: Int32? {
        switch self {
        case .libraryNotLoaded, .missingSymbol: nil
        case .initFailed(_, let code, _), .call(_, let code, _): code
        }
    }

    /// True when the GPU fell off the bus or otherwise became inaccessible (NVML_ERROR_GPU_IS_LOST).
    public var isGPULost: Bool { code == NVMLReturn.gpuIsLost }

    public var description: String {
        switch self {
        case .libraryNotLoaded(let path, let reason): "cannot load NVML from \(path): \(reason)"
        case .missingSymbol(let path, let symbol): "\(path) has no \(symbol): not a usable NVML library"
        case .initFailed(let function, let code, let message): "\(function) failed: \(message) (NVML error \(code))"
        case .call(let function, let code, let message): "\(function): \(message) (NVML error \(code))"
        }
    }
}

/// The nvmlReturn_t values hostmeter acts on.
enum NVMLReturn {
    static let success: Int32 = 0
    static let notSupported: Int32 = 3
    static let notFound: Int32 = 6
    static let functionNotFound: Int32 = 13
    static let gpuIsLost: Int32 = 15

    /// "This device or this library does not have the figure": not an error worth reporting.
    static func meansUnsupported(_ code: Int32) -> Bool { code == notSupported || code == functionNotFound }
}
