// SPDX-License-Identifier: Apache-2.0
import GatewayCore
import Testing

@Suite struct UpstreamSignatureTests {
    private let secret = Array("0123456789abcdef0123".utf8)
    private let body = Array(#"{"room":101}"#.utf8)

    private func signature(timestamp: Int = 1_795_400_000) -> UpstreamSignature {
        UpstreamSignature(method: "POST", target: "/api/checkIn?x=1", upstream: "pms", timestamp: timestamp, requestID: "abc123", user: "usr_1", key: "key_1",
                          scopes: ["pms:*", "café"], properties: ["hotel-1"], property: "hotel-1")
    }

    /// The same value Python's hmac/hashlib give for the README's verification snippet.
    @Test func matchesAnIndependentImplementation() {
        #expect(signature().sign(body: body, secret: secret) == "v2=c3dbd9c326ef240051ba72a3a9c7a15225d4270e188e2982887731c3cb5a8e76")
    }

    @Test func verifiesOwnSignatureWithinTheSkew() {
        let s = signature()
        let header = s.sign(body: body, secret: secret)
        #expect(s.verify(header, body: body, secret: secret, now: 1_795_400_000 + 299))
        #expect(!s.verify(header, body: body, secret: secret, now: 1_795_400_000 + 301))
        #expect(!s.verify(header, body: body, secret: secret, now: 1_795_400_000 - 301))
    }

    @Test func anyChangeBreaksTheSignature() {
        let s = signature()
        let header = s.sign(body: body, secret: secret)
        let now = 1_795_400_000
        #expect(!s.verify(header, body: Array(#"{"room":102}"#.utf8), secret: secret, now: now))
        #expect(!s.verify(header, body: body, secret: Array("another secret of 20b".utf8), now: now))
        for change in [\UpstreamSignature.user, \.key, \.scopes, \.properties, \.property, \.method, \.target, \.requestID, \.upstream] {
            var tampered = s
            tampered[keyPath: change] += "x"
            #expect(!tampered.verify(header, body: body, secret: secret, now: now))
        }
        var later = s
        later.timestamp += 1
        #expect(!later.verify(header, body: body, secret: secret, now: now))
    }

    /// Two upstreams sharing a secret: what one was sent, the other refuses (it verifies with its own name).
    @Test func anotherUpstreamCannotReplayACall() {
        let header = signature().sign(body: body, secret: secret)
        var atBilling = signature()
        atBilling.upstream = "billing"
        #expect(signature().verify(header, body: body, secret: secret, now: 1_795_400_000))
        #expect(!atBilling.verify(header, body: body, secret: secret, now: 1_795_400_000))
    }

    /// Every identity header is a line of the signed text, so none can change unnoticed.
    @Test func everyIdentityHeaderIsSigned() {
        let s = signature()
        let lines = s.canonical(bodyDigest: "").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.count == 3 + s.headers.count + 1)
        #expect(Array(lines[3..<(3 + s.headers.count)]) == s.headers.map(\.value))
        #expect(Set(s.headers.map { $0.name.lowercased() }).count == s.headers.count)
        #expect(s.headers.allSatisfy { $0.name.hasPrefix("X-Doorman-") })
    }

    @Test func headerListsAreASCIIJSON() {
        #expect(UpstreamSignature.asciiJSON(["a", "b\"c", "é\\"]) == #"["a","b\"c","\u00e9\\"]"#)
        #expect(UpstreamSignature.asciiJSON([]) == "[]")
    }
}

@Suite struct RateLimitsTests {
    @Test func keyOverridesGroupOverridesServer() {
        let server = RateLimits(messagesPerSecond: 100, messageBurst: 200, callsPerSecond: 50, callBurst: 100, handshakesPerSecond: 0, handshakeBurst: 20)
        let group = RateLimits(callsPerSecond: 5, callBurst: 10)
        let key = RateLimits(callsPerSecond: 1)
        let effective = RateLimits.effective(key, group, server)
        #expect(effective.callsPerSecond == 1)
        #expect(effective.callBurst == 10)
        #expect(effective.messagesPerSecond == 100)
        #expect(RateLimits.effective(nil, nil, server) == server)
    }

    @Test func rejectsNegativeOrInfiniteValues() {
        #expect(RateLimits(callsPerSecond: -1).problem != nil)
        #expect(RateLimits(messageBurst: .infinity).problem != nil)
        #expect(RateLimits(callsPerSecond: 0).problem == nil)
    }
}
