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

    /// A verdict on what was sent: the batch is bisected, so only the event it is about is refused.
    @Test(arguments: [400, 413, 422])
    func verdictsOnTheEventsAreRejectedAndBisected(status: Int) {
        guard case .rejected(_, let detail, let canBisect) = ResponseClassifier.classify(status: status, retryAfter: nil, body: "no")
        else {
            Issue.record("\(status) should be rejected")
            return
        }
        #expect(canBisect)
        #expect(detail.contains("HTTP \(status)"))
    }

    /// A failure of the endpoint (credentials, proxy, URL, method, media type), not a verdict on the
    /// events: retried with backoff like a 5xx, never dead-lettered.
    @Test(arguments: [(401, "http_401"), (403, "http_403"), (404, "http_404"), (407, "http_407"), (405, "http_4xx"),
                      (409, "http_4xx"), (410, "http_4xx"), (415, "http_4xx"), (451, "http_4xx")])
    func failuresOfTheEndpointAreRetried(status: Int, reason: String) {
        guard case .retryable(let got, let detail, let retryAfter) = ResponseClassifier.classify(status: status, retryAfter: 3, body: "go away")
        else {
            Issue.record("\(status) should be retryable")
            return
        }
        #expect(got.rawValue == reason)
        #expect(detail.hasPrefix("HTTP \(status)"), "\(detail)")
        #expect(retryAfter == 3)
    }
}
