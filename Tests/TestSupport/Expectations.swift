public import Testing

import Foundation

/// Expects |measured − reference| ≤ tolerance × reference, naming both and the difference in
/// per cent when it is not: for a figure the agent billed against what the kernel counted.
public func expectClose(
    _ measured: UInt64, _ reference: UInt64, within tolerance: Double, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let difference = Double(measured > reference ? measured - reference : reference - measured)
    #expect(
        difference <= tolerance * Double(reference),
        "\(what): \(measured) vs \(reference) (\(String(format: "%.3f", difference / Double(max(reference, 1)) * 100)) %)",
        sourceLocation: sourceLocation)
}
