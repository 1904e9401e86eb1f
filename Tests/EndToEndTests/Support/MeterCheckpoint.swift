/// The parts of a meter's checkpoint (MeterState's JSON, as the agent stores it) that the
/// conservation checks need: counters at the last sample, the open period's usage, the carried CPU
/// nanoseconds and the last sample's wall time. Decoded from the JSON rather than with Metering's
/// type, so that a change of the stored form fails these tests instead of following along.
struct MeterCheckpoint: Decodable {
    struct Counter: Decodable { let value: UInt64 }
    struct Open: Decodable {
        let start: Int64
        let usage: [String: UInt64]
    }
    let counters: [String: Counter]
    let period: Open
    let cpu_carry_ns: UInt64
    let last_wall_ns: Int64
}
