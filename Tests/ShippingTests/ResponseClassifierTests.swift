import Testing

@testable import Shipping

@Suite struct ResponseClassifierTests {
    @Test(arguments: [200, 201, 202, 204, 299])
    func successIsDelivered(status: Int) {
        #expect(ResponseClassifier.classify(status: status, retryAfter: nil, body: "garbage{") == .delivered)
    }

    @Test(arguments: [(408, ShipFailureReason.http408), (429, .http429), (500, .http5xx), (502, .http5xx),
                      (503, .http5xx), (599, .http5xx), (301, .unexpectedStatus), (100, .unexpectedStatus)])
    func transientStatusesAreRetryable(status: Int, reason: ShipFailureReason) {
        guard case .retryable(let got, _, let retryAfter) = ResponseClassifier.classify(status: status, retryAfter: 7, body: "")
        else {
            Issue.record("\(status) should be retryable")
            return
        }
        #expect(got == reason)
        #expect(retryAfter == 7)
    }

    @Test(arguments: [(400, true), (413, true), (401, false), (403, false), (404, false), (422, false)])
    func otherClientErrorsAreRejected(status: Int, bisectable: Bool) {
        guard case .rejected(_, let detail, let canBisect) = ResponseClassifier.classify(status: status, retryAfter: nil, body: "no")
        else {
            Issue.record("\(status) should be rejected")
            return
        }
        #expect(canBisect == bisectable)
        #expect(detail.contains("HTTP \(status)"))
    }
}
