// SPDX-License-Identifier: Apache-2.0
import GatewayCore
import Testing

@Suite struct UpstreamSignatureTests {
    private let secret = Array("0123456789abcdef0123".utf8)
    private let body = Array(#"{"room":101}"#.utf8)

    private func signature(timestamp: Int = 1_795_400_000) -> UpstreamSignature {
        UpstreamSignature(method: "POST", target: "/api/checkIn?x=1", timestamp: timestamp, requestID: "abc123", user: "usr_1", key: "key_1",
                          scopes: ["pms:*", "café"], properties: ["hotel-1"], property: "hotel-1")
    }

    /// The same value Python's hmac/hashlib give for the README's verification snippet.
    @Test func matchesAnIndependentImplementation() {
        #expect(signature().sign(body: body, secret: secret) == "v1=a091c675ddd24bfa455b2f5d0a07bebeb26c2379840a649da824814dda5bf0de")
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
        for change in [\UpstreamSignature.user, \.key, \.scopes, \.properties, \.property, \.method, \.target, \.requestID] {
            var tampered = s
            tampered[keyPath: change] += "x"
            #expect(!tampered.verify(header, body: body, secret: secret, now: now))
        }
        var later = s
        later.timestamp += 1
        #expect(!later.verify(header, body: body, secret: secret, now: now))
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
