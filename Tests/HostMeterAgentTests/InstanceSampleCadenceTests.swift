import HostMeterAgent
import Testing

/// `instance_sample_seconds`: how often instances are probed, a multiple of the sample cadence.
@Suite struct InstanceSampleCadenceTests {
    @Test(arguments: [
        ("{}", 15),
        ("interval_seconds: 2\nsample_seconds: 1", 2),
        ("interval_seconds: 30\nsample_seconds: 4", 12),
        ("interval_seconds: 60\nsample_seconds: 10", 10),
        ("interval_seconds: 30\ninstance_sample_seconds: 5", 5),
        ("interval_seconds: 30\nsample_seconds: 10\ninstance_sample_seconds: 30", 30),
    ])
    func defaultsAndValues(yaml: String, expected: Int) throws {
        #expect(try AgentConfiguration.parse(yaml).effectiveInstanceSampleSeconds == expected)
    }

    @Test(arguments: [
        ("instance_sample_seconds: 7", "multiple of sample_seconds"),
        ("instance_sample_seconds: 60", "must not be longer than interval_seconds"),
        ("instance_sample_seconds: 0", "between 1 and 3600"),
        ("instance_sample_seconds: soon", "expected an integer"),
    ])
    func badValuesAreRefusedNamingTheKey(yaml: String, message: String) {
        do {
            _ = try AgentConfiguration.parse(yaml)
            Issue.record("accepted \(yaml)")
        } catch {
            #expect(error.key == "instance_sample_seconds", "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }
}
