import Foundation
import Testing
import TestSupport
import UsageModel

@testable import Metering

/// A checkpoint is stored as the bytes `JSONEncoder` (sorted keys) wrote before `checkpointJSON()`
/// replaced it, and reads back equal: checkpoints stored by an older agent and by this one are the
/// same format.
@Suite struct MeterStateJSONTests {
    static let stateEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static func state(_ values: inout AwkwardValues) -> MeterState {
        var counters: [String: CounterBaseline] = [:]
        for _ in 0..<Int.random(in: 0...6, using: &values.random) {
            counters[values.string()] = CounterBaseline(
                value: values.unsigned(), lastSeenBootNanos: values.unsigned(),
                generation: values.chance(0.5) ? values.unsigned() : nil)
        }
        var period = OpenPeriod(
            start: values.signed(), spanStartBootNanos: values.unsigned(), cpuCapacity: values.double(),
            storageUsedBytes: values.chance(0.5) ? values.unsigned() : nil)
        for kind in CounterKind.allCases where values.chance(0.6) {
            period.usage[kind] = values.unsigned()
        }
        period.memoryByteSeconds = values.double()
        period.memoryPercentSeconds = values.double()
        period.gaugeSeconds = values.double()
        var state = MeterState(
            format: MeterState.format, bootID: values.string(), lastWallNanos: values.signed(),
            lastBootNanos: values.unsigned(), counters: counters,
            lastMemoryUsedBytes: values.chance(0.5) ? values.unsigned() : nil,
            lastMemoryPercent: values.chance(0.5) ? values.double() : nil, period: period,
            cpuCarryNanos: values.unsigned(), gpuCarryNanos: values.unsigned())
        if values.chance(0.3) { state.stoppedAt = values.signed() }
        if values.chance(0.6) {
            state.identity = InstanceIdentity(
                instanceID: values.string(), userID: values.string(), orgID: values.chance(0.5) ? values.string() : nil)
        }
        return state
    }

    @Test func checkpointsAreWrittenAsJSONEncoderWroteThem() throws {
        for seed in UInt64(0)..<3_000 {
            var values = AwkwardValues(seed: seed)
            let state = Self.state(&values)
            let written = try state.checkpointJSON()
            let expected = try Self.stateEncoder.encode(state)
            #expect(
                Data(written) == expected,
                "seed \(seed): \(String(decoding: written, as: UTF8.self)) ≠ \(String(decoding: expected, as: UTF8.self))")
            if Data(written) != expected { return }
            #expect(try JSONDecoder().decode(MeterState.self, from: Data(written)) == state, "seed \(seed)")
        }
    }

    @Test func aCheckpointThatJSONCannotHoldIsRefusedByName() {
        var values = AwkwardValues(seed: 7)
        var state = Self.state(&values)
        state.period.gaugeSeconds = .nan
        #expect(throws: JSONBytes.NonConformingFloat.self) { try state.checkpointJSON() }
        #expect(throws: EncodingError.self) { try Self.stateEncoder.encode(state) }
    }
}
