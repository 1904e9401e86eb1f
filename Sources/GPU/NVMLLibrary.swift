internal import CNVML

/// One loaded and initialised NVML library (libnvidia-ml), opened with dlopen at run time so the
/// agent needs no NVIDIA package to build or run.
///
/// Thread safety: NVML's entry points are documented as thread-safe, and the table of function
/// pointers is written once in `cnvml_open` and only read afterwards, so one library is shared
/// by every task (hence `@unchecked Sendable`).
public final class NVMLLibrary: @unchecked Sendable {
    /// The soname the NVIDIA driver installs; found through the dynamic linker's search path.
    public static let defaultPath = "libnvidia-ml.so.1"

    /// Where the library was loaded from, as given.
    public let path: String
    /// The symbols bound for the entry points that have versions, e.g. ["nvmlInit_v2",
    /// "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2"]; the unversioned names on old drivers.
    public let boundVersionedSymbols: [String]
    /// Optional entry points this library lacks; the figures they give are absent.
    public let missingOptionalSymbols: [String]

    // Owned: freed (after nvmlShutdown) in deinit, never handed out.
    private let library: UnsafeMutablePointer<cnvml_library>
    private let countSymbol: String
    private let handleSymbol: String

    /// What loading produced.
    public enum LoadResult: Sendable {
        case loaded(NVMLLibrary)
        /// No NVML on this host (dlopen failed): not an error; report once and run without GPUs.
        case noNVML(reason: String)
        /// NVML is here but unusable: a required symbol is missing or nvmlInit failed.
        case failed(NVMLError)
    }

    /// Loads and initialises the library, sorting "no NVML here" from real failures.
    public static func load(path: String = defaultPath) -> LoadResult {
        do throws(NVMLError) {
            return .loaded(try NVMLLibrary(path: path))
        } catch .libraryNotLoaded(_, let reason) {
            return .noNVML(reason: reason)
        } catch {
            return .failed(error)
        }
    }

    /// dlopen's `path`, binds the entry points and calls nvmlInit.
    public init(path: String = defaultPath) throws(NVMLError) {
        var failure = CNVML_OPEN_OK
        var message = [CChar](repeating: 0, count: 512)
        let opened = message.withUnsafeMutableBufferPointer { buffer in
            cnvml_open(path, &failure, buffer.baseAddress, buffer.count)
        }
        guard let opened else {
            let text = Self.string(fromNulTerminated: message)
            switch failure {
            case CNVML_OPEN_MISSING_SYMBOL: throw .missingSymbol(path: path, symbol: text)
            default: throw .libraryNotLoaded(path: path, reason: text)
            }
        }
        let initName = opened.pointee.initName.map { String(cString: $0) } ?? "nvmlInit"
        let code = cnvml_init(opened)
        guard code == NVMLReturn.success else {
            let message = Self.errorText(opened, code)
            cnvml_close(opened)
            throw .initFailed(function: initName, code: code, message: message)
        }
        self.path = path
        self.library = opened
        self.countSymbol = opened.pointee.deviceGetCountName.map { String(cString: $0) } ?? "nvmlDeviceGetCount"
        self.handleSymbol =
            opened.pointee.deviceGetHandleByIndexName.map { String(cString: $0) } ?? "nvmlDeviceGetHandleByIndex"
        self.boundVersionedSymbols = [initName, countSymbol, handleSymbol]
        let optional: [(cnvml_optional_symbol, String)] = [
            (CNVML_SYMBOL_SAMPLES, "nvmlDeviceGetSamples"),
            (CNVML_SYMBOL_POWER_USAGE, "nvmlDeviceGetPowerUsage"),
            (CNVML_SYMBOL_TOTAL_ENERGY, "nvmlDeviceGetTotalEnergyConsumption"),
            (CNVML_SYMBOL_TEMPERATURE, "nvmlDeviceGetTemperature"),
            (CNVML_SYMBOL_MIG_MODE, "nvmlDeviceGetMigMode"),
        ]
        self.missingOptionalSymbols = optional.filter { cnvml_has(opened, $0.0) == 0 }.map(\.1)
    }

    deinit {
        // nvmlInit is reference counted: this balances our one call. No device handle outlives
        // the library, since handles are only used inside calls that hold a reference to it.
        _ = cnvml_shutdown(library)
        cnvml_close(library)
    }

    /// nvmlErrorString's text for `code`.
    public func errorString(_ code: Int32) -> String { Self.errorText(library, code) }

    private static func errorText(_ library: UnsafeMutablePointer<cnvml_library>, _ code: Int32) -> String {
        // nvmlErrorString returns a static string owned by the library; copy it at once.
        guard let text = cnvml_error_string(library, code) else { return "unknown NVML error \(code)" }
        return String(cString: text)
    }

    private static func string(fromNulTerminated buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func check(_ code: Int32, _ function: String) throws(NVMLError) {
        guard code == NVMLReturn.success else {
            throw .call(function: function, code: code, message: errorString(code))
        }
    }
}

/// A device handle. Valid while its library lives; never stored beyond one sample.
struct NVMLDevice {
    let handle: nvmlDevice_t
}

// Typed wrappers over the C entry points. Each either returns the figure or throws the call's
// error with nvmlErrorString's text.
extension NVMLLibrary {
    func deviceCount() throws(NVMLError) -> Int {
        var count: UInt32 = 0
        try check(cnvml_device_get_count(library, &count), countSymbol)
        return Int(count)
    }

    func device(at index: Int) throws(NVMLError) -> NVMLDevice {
        var handle: nvmlDevice_t?
        try check(cnvml_device_get_handle_by_index(library, UInt32(index), &handle), handleSymbol)
        guard let handle else { throw .call(function: handleSymbol, code: -1, message: "returned success and no handle") }
        return NVMLDevice(handle: handle)
    }

    func uuid(_ device: NVMLDevice) throws(NVMLError) -> String {
        try text(size: Int(CNVML_UUID_BUFFER_SIZE), "nvmlDeviceGetUUID") { library, buffer, length in
            cnvml_device_get_uuid(library, device.handle, buffer, length)
        }
    }

    func name(_ device: NVMLDevice) throws(NVMLError) -> String {
        try text(size: Int(CNVML_NAME_BUFFER_SIZE), "nvmlDeviceGetName") { library, buffer, length in
            cnvml_device_get_name(library, device.handle, buffer, length)
        }
    }

    /// Percent of the last sample period a kernel ran.
    func utilizationRate(_ device: NVMLDevice) throws(NVMLError) -> UInt32 {
        var utilization = nvmlUtilization_t()
        try check(
            cnvml_device_get_utilization_rates(library, device.handle, &utilization), "nvmlDeviceGetUtilizationRates")
        return utilization.gpu
    }

    func memory(_ device: NVMLDevice) throws(NVMLError) -> (used: UInt64, total: UInt64) {
        var memory = nvmlMemory_t()
        try check(cnvml_device_get_memory_info(library, device.handle, &memory), "nvmlDeviceGetMemoryInfo")
        return (UInt64(memory.used), UInt64(memory.total))
    }

    func powerMilliwatts(_ device: NVMLDevice) throws(NVMLError) -> UInt32 {
        var milliwatts: UInt32 = 0
        try check(cnvml_device_get_power_usage(library, device.handle, &milliwatts), "nvmlDeviceGetPowerUsage")
        return milliwatts
    }

    func totalEnergyMillijoules(_ device: NVMLDevice) throws(NVMLError) -> UInt64 {
        var millijoules: UInt64 = 0
        try check(
            cnvml_device_get_total_energy_consumption(library, device.handle, &millijoules),
            "nvmlDeviceGetTotalEnergyConsumption")
        return millijoules
    }

    func temperatureCelsius(_ device: NVMLDevice) throws(NVMLError) -> UInt32 {
        var celsius: UInt32 = 0
        try check(
            cnvml_device_get_temperature(
                library, device.handle, nvmlTemperatureSensors_t(NVML_TEMPERATURE_GPU), &celsius),
            "nvmlDeviceGetTemperature")
        return celsius
    }

    func migMode(_ device: NVMLDevice) throws(NVMLError) -> (current: UInt32, pending: UInt32) {
        var current: UInt32 = 0
        var pending: UInt32 = 0
        try check(cnvml_device_get_mig_mode(library, device.handle, &current, &pending), "nvmlDeviceGetMigMode")
        return (current, pending)
    }

    /// The GPU utilization samples newer than `lastSeenMicros` (0: the whole buffer), in the
    /// order the library returned them; empty when there are none (NVML_ERROR_NOT_FOUND).
    func utilizationSamples(_ device: NVMLDevice, after lastSeenMicros: UInt64)
        throws(NVMLError) -> [UtilizationSample]
    {
        let function = "nvmlDeviceGetSamples"
        let type = nvmlSamplingType_t(NVML_GPU_UTILIZATION_SAMPLES)
        var valueType = nvmlValueType_t(0)
        var count: UInt32 = 0
        // With a NULL buffer NVML reports how many entries to allocate.
        var code = cnvml_device_get_samples(library, device.handle, type, lastSeenMicros, &valueType, &count, nil)
        if code == NVMLReturn.notFound { return [] }
        try check(code, function)
        guard count > 0 else { return [] }
        var buffer = [nvmlSample_t](repeating: nvmlSample_t(), count: Int(count))
        code = buffer.withUnsafeMutableBufferPointer { samples in
            cnvml_device_get_samples(
                library, device.handle, type, lastSeenMicros, &valueType, &count, samples.baseAddress)
        }
        if code == NVMLReturn.notFound { return [] }
        try check(code, function)
        // NVML sets count to the entries it wrote; never read past what we allocated.
        let written = min(Int(count), buffer.count)
        var result: [UtilizationSample] = []
        result.reserveCapacity(written)
        for sample in buffer.prefix(written) {
            guard let value = Self.value(sample.sampleValue, type: valueType) else {
                throw .call(function: function, code: -1, message: "unknown sample value type \(valueType)")
            }
            result.append(UtilizationSample(timestampMicros: UInt64(sample.timeStamp), value: value))
        }
        return result
    }

    /// The member of the union that `type` names.
    private static func value(_ value: nvmlValue_t, type: nvmlValueType_t) -> Double? {
        switch type {
        case nvmlValueType_t(NVML_VALUE_TYPE_DOUBLE): value.dVal
        case nvmlValueType_t(NVML_VALUE_TYPE_UNSIGNED_INT): Double(value.uiVal)
        case nvmlValueType_t(NVML_VALUE_TYPE_UNSIGNED_LONG): Double(value.ulVal)
        case nvmlValueType_t(NVML_VALUE_TYPE_UNSIGNED_LONG_LONG): Double(value.ullVal)
        case nvmlValueType_t(NVML_VALUE_TYPE_SIGNED_LONG_LONG): Double(value.sllVal)
        case nvmlValueType_t(NVML_VALUE_TYPE_SIGNED_INT): Double(value.siVal)
        case nvmlValueType_t(NVML_VALUE_TYPE_UNSIGNED_SHORT): Double(value.usVal)
        default: nil
        }
    }

    private func text(
        size: Int, _ function: String,
        _ call: (UnsafeMutablePointer<cnvml_library>, UnsafeMutablePointer<CChar>, UInt32) -> Int32
    ) throws(NVMLError) -> String {
        // One byte more than we tell NVML, zeroed, so the text is NUL-terminated whatever it writes.
        var buffer = [CChar](repeating: 0, count: size + 1)
        let code = buffer.withUnsafeMutableBufferPointer { call(library, $0.baseAddress!, UInt32(size)) }
        try check(code, function)
        return Self.string(fromNulTerminated: buffer)
    }
}
