public import Probes
import Synchronization

/// Reads every NVIDIA GPU through NVML and keeps, per GPU, a busy-time counter integrated from
/// NVML's utilization sample buffer.
///
/// Each `sample()` fetches the utilization samples newer than the last one it counted
/// (nvmlDeviceGetSamples with the last seen timestamp) and integrates them, so the utilization it
/// reports covers the whole interval since the previous look and the busy counter misses nothing
/// between looks, as long as the driver's ring still holds them (its size is the driver's, of
/// the order of a hundred samples, so looks a few seconds apart lose none). Where the sample buffer is
/// not supported the sampler falls back to nvmlDeviceGetUtilizationRates, one reading of the last
/// sample period held for the whole interval: right on average for steady loads, approximate for
/// bursty ones (the reading says which).
///
/// The busy counter (`GPUReading.busyNanoseconds`) is cumulative and only grows for the life of the
/// process; metering uses it like a kernel counter, by deltas. It lives in memory: a restarted
/// agent starts it again from zero, which metering sees as a counter reset for that GPU and bills
/// nothing between the last sample of the old process and the first of the new one (a recorded
/// gap). A GPU passed through to a VM is detached from the host's driver and invisible to the
/// host's NVML, so it has no counter here: bill it by the seconds it was assigned.
///
/// MIG: with MIG enabled NVML gives no utilization for the GPU (nor per MIG instance: that needs
/// DCGM profiling metrics), so such a GPU has no busy counter; memory, power, energy, temperature
/// and the MIG mode are still reported. See docs/GPU.md.
///
/// A GPU that NVML reports lost (NVML_ERROR_GPU_IS_LOST) is marked lost and skipped; the others
/// are read as usual, and its counter resumes if it comes back with the same UUID.
public final class GPUSampler: Sendable {
    /// NVML documents utilization sample periods of 1/6 s to 1 s; half a period more for
    /// scheduling jitter. A longer hole between samples means the ring lost some.
    public static let defaultMaximumSampleSpanMicros: UInt64 = 1_500_000

    /// How far ahead of this machine's wall clock a sample timestamp may be before we conclude
    /// the wall clock stepped back (NVML stamps samples with the CPU's wall clock).
    static let clockToleranceMicros: UInt64 = 10_000_000

    public let library: NVMLLibrary
    private let clock: HostClock
    private let maximumSampleSpanMicros: UInt64
    // Held for a whole look: two looks at once would count the same samples twice.
    private let state = Mutex(SamplerState())

    public init(
        library: NVMLLibrary, clock: HostClock = .system,
        maximumSampleSpanMicros: UInt64 = GPUSampler.defaultMaximumSampleSpanMicros
    ) {
        precondition(maximumSampleSpanMicros > 0, "maximumSampleSpanMicros must be positive")
        self.library = library
        self.clock = clock
        self.maximumSampleSpanMicros = maximumSampleSpanMicros
    }

    /// Reads every GPU. Never throws: failures are in the snapshot, per GPU where they belong.
    public func sample() -> GPUSnapshot {
        state.withLock { state in
            let time = clock.now()
            let count: Int
            do throws(NVMLError) {
                count = try library.deviceCount()
            } catch {
                return GPUSnapshot(time: time, gpus: [], error: error.description)
            }
            var gpus: [GPUReading] = []
            gpus.reserveCapacity(count)
            for index in 0..<count {
                gpus.append(read(index: index, at: time, state: &state))
            }
            return GPUSnapshot(time: time, gpus: gpus)
        }
    }

    private func read(index: Int, at time: SampleTime, state: inout SamplerState) -> GPUReading {
        var reading = GPUReading(index: index, uuid: state.uuidByIndex[index])
        var errors: [String] = []
        do throws(NVMLError) {
            let device = try library.device(at: index)
            let uuid = try library.uuid(device)
            reading.uuid = uuid
            state.uuidByIndex[index] = uuid
            reading.name = try optional(&errors) { () throws(NVMLError) in try library.name(device) }

            var gpu = state.devices[uuid] ?? DeviceState()
            defer { state.devices[uuid] = gpu }
            try readUtilization(device, at: time, into: &reading, state: &gpu, errors: &errors)

            if let memory = try optional(&errors, { () throws(NVMLError) in try library.memory(device) }) {
                reading.memoryUsedBytes = memory.used
                reading.memoryTotalBytes = memory.total
            }
            reading.powerWatts = try optional(&errors) { () throws(NVMLError) in
                Double(try library.powerMilliwatts(device)) / 1000
            }
            reading.energyJoules = try optional(&errors) { () throws(NVMLError) in
                Double(try library.totalEnergyMillijoules(device)) / 1000
            }
            reading.temperatureCelsius = try optional(&errors) { () throws(NVMLError) in
                Int(try library.temperatureCelsius(device))
            }
            reading.migMode = try optional(&errors) { () throws(NVMLError) in
                let mode = try library.migMode(device)
                return MIGMode(
                    enabled: mode.current == MIGModeValue.enabled, pendingEnabled: mode.pending == MIGModeValue.enabled)
            }
        } catch where error.isGPULost {
            reading = GPUReading(index: index, uuid: reading.uuid, name: reading.name, lost: true)
            errors = [error.description]
        } catch {
            errors.append(error.description)
        }
        reading.error = errors.isEmpty ? nil : errors.joined(separator: "; ")
        return reading
    }

    /// Integrates the GPU's new utilization samples into its busy counter, or falls back to the
    /// last-period rate where the sample buffer is not supported.
    private func readUtilization(
        _ device: NVMLDevice, at time: SampleTime, into reading: inout GPUReading, state gpu: inout DeviceState,
        errors: inout [String]
    ) throws(NVMLError) {
        do throws(NVMLError) {
            let window = try integrateSamples(device, at: time, state: &gpu)
            gpu.rateBootNanos = nil
            reading.utilizationSource = .samples
            reading.utilizationPercent = window?.percent
            reading.busyNanoseconds = gpu.busyNanoseconds
            return
        } catch where error.isGPULost {
            throw error
        } catch where NVMLReturn.meansUnsupported(error.code ?? 0) {
            // No sample buffer on this GPU or library: use the rate below.
        } catch {
            errors.append(error.description)
            return
        }

        // A later switch back to samples starts a fresh window, so no interval is counted twice.
        gpu.lastSeenMicros = nil
        let rate: UInt32
        do throws(NVMLError) {
            rate = try library.utilizationRate(device)
        } catch where error.isGPULost {
            throw error
        } catch {
            // Unsupported under MIG: no figure, no error.
            if !NVMLReturn.meansUnsupported(error.code ?? 0) { errors.append(error.description) }
            gpu.rateBootNanos = nil
            return
        }
        let percent = UInt64(min(rate, 100))
        if let previous = gpu.rateBootNanos, time.bootNanos > previous {
            gpu.busyNanoseconds &+= (time.bootNanos - previous) / 100 * percent
                + (time.bootNanos - previous) % 100 * percent / 100
        }
        gpu.rateBootNanos = time.bootNanos
        reading.utilizationSource = .rates
        reading.utilizationPercent = Double(percent)
        reading.busyNanoseconds = gpu.busyNanoseconds
    }

    /// Adds the samples newer than the last counted one to the busy counter. Returns the window
    /// counted, or nil for the first look at a GPU (which only marks where counting starts).
    private func integrateSamples(_ device: NVMLDevice, at time: SampleTime, state gpu: inout DeviceState)
        throws(NVMLError) -> UtilizationWindow?
    {
        let nowMicros = UInt64(clamping: time.wallNanos / 1000)
        if let lastSeen = gpu.lastSeenMicros, lastSeen > nowMicros &+ Self.clockToleranceMicros {
            // The wall clock stepped back: NVML would return nothing newer than lastSeen until the
            // clock caught up. Start again from the newest sample stamped before now; the samples
            // stamped before the step stay out through the bound below.
            let samples = try library.utilizationSamples(device, after: 0)
            let latestPlausible = nowMicros &+ Self.clockToleranceMicros
            if let newest = samples.map(\.timestampMicros).filter({ $0 <= latestPlausible }).max() {
                gpu.lastSeenMicros = newest
                gpu.lastSeenBootNanos = time.bootNanos
                return nil
            }
        }

        var samples = try library.utilizationSamples(device, after: gpu.lastSeenMicros ?? 0)
        if let lastSeen = gpu.lastSeenMicros, let seenAt = gpu.lastSeenBootNanos, time.bootNanos >= seenAt {
            // A new sample cannot be stamped later than lastSeen plus the time since we saw it
            // (measured on the boot clock, which never steps) plus a sample period of lag.
            let bound = lastSeen &+ (time.bootNanos - seenAt) / 1000 &+ Self.clockToleranceMicros
            samples.removeAll { $0.timestampMicros > bound }
        }
        let window = UtilizationWindow.integrate(
            samples, after: gpu.lastSeenMicros, maximumSpanMicros: maximumSampleSpanMicros)
        let priming = gpu.lastSeenMicros == nil
        if let newest = window.lastSeenMicros, newest != gpu.lastSeenMicros {
            gpu.lastSeenMicros = newest
            gpu.lastSeenBootNanos = time.bootNanos
        }
        if priming { return nil }
        gpu.busyNanoseconds &+= window.busyNanoseconds
        return window
    }

    /// Runs `body`; "not supported" gives nil silently, another failure gives nil and an error,
    /// a lost GPU is rethrown so the caller stops reading it.
    private func optional<T>(_ errors: inout [String], _ body: () throws(NVMLError) -> T) throws(NVMLError) -> T? {
        do throws(NVMLError) {
            return try body()
        } catch where error.isGPULost {
            throw error
        } catch {
            if !NVMLReturn.meansUnsupported(error.code ?? 0) { errors.append(error.description) }
            return nil
        }
    }
}

/// Values nvmlDeviceGetMigMode returns.
enum MIGModeValue {
    static let enabled: UInt32 = 1
}

/// What the sampler remembers between looks.
struct SamplerState {
    /// Per GPU UUID: survives index changes and a GPU that drops out and comes back.
    var devices: [String: DeviceState] = [:]
    /// The UUID last read at each index, to name a GPU whose UUID can no longer be read.
    var uuidByIndex: [Int: String] = [:]
}

struct DeviceState {
    /// Utilization-weighted busy time counted so far, nanoseconds.
    var busyNanoseconds: UInt64 = 0
    /// The newest sample timestamp counted (µs); nil until the first look, and after a fallback to rates.
    var lastSeenMicros: UInt64?
    /// Boot-clock time of the look that advanced `lastSeenMicros`.
    var lastSeenBootNanos: UInt64?
    /// Boot-clock time of the last rate reading, in the fallback mode.
    var rateBootNanos: UInt64?
}
