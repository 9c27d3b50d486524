// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import DoormanClient

@Suite struct ReconnectPolicyTests {
    /// 4000-4099: revoked, expired, rotated, deleted, unknown key, and codes of that range the
    /// client does not know yet.
    @Test(arguments: [4000, 4001, 4003, 4004, 4006, 4008, 4050, 4099])
    func stopsForGoodOnTerminalCloseCodes(code: Int) {
        #expect(ReconnectPolicy.action(closeCode: code) == .stop)
    }

    @Test(arguments: [4100, 4129, 4199])
    func backsOffOnTransientCloseCodes(code: Int) {
        #expect(ReconnectPolicy.action(closeCode: code) == .backOff(atLeast: nil))
    }

    /// A suspend, a disabled user or a kick: the server's hint, never a stop; and the refused
    /// handshakes while it lasts wait their Retry-After.
    @Test(arguments: [4102, 4105, 4107])
    func retriesAfterTheServersHintOnReversibleEnds(code: Int) {
        #expect(ReconnectPolicy.action(closeCode: code, retryAfterMs: 30_000) == .retryAfter(.seconds(30)))
        #expect(ReconnectPolicy.action(closeCode: code) == .backOff(atLeast: nil))
    }

    @Test func waitsOutASuspendedKeyOrADisabledUser() {
        #expect(ReconnectPolicy.action(handshakeStatus: 401, retryAfter: .seconds(45), refusal: "suspended_key") == .retryAfter(.seconds(45)))
        #expect(ReconnectPolicy.action(handshakeStatus: 401, retryAfter: nil, refusal: "user_disabled") == .retryAfter(.seconds(30)))
        #expect(ReconnectPolicy.action(handshakeStatus: 401, retryAfter: nil, refusal: "revoked_key") == .stop)
    }

    @Test(arguments: [4200, 4250, 4299])
    func reconnectsAtOnceOnReconnectNowCodes(code: Int) {
        #expect(ReconnectPolicy.action(closeCode: code) == .reconnectNow)
    }

    @Test func reconnectsPromptlyWhenTheServerRestarts() {
        #expect(ReconnectPolicy.action(closeCode: 1001) == .reconnectSoon)
        #expect(ReconnectPolicy.action(closeCode: 1012) == .reconnectSoon)
    }

    @Test(arguments: [nil, 1000, 1002, 1007, 1009, 1011, 1013, 3000, 4300, 4999] as [Int?])
    func backsOffOnEverythingElse(code: Int?) {
        #expect(ReconnectPolicy.action(closeCode: code) == .backOff(atLeast: nil))
    }

    @Test func stopsWhenTheHandshakeIsRefusedForTheKey() {
        #expect(ReconnectPolicy.action(handshakeStatus: 401, retryAfter: nil) == .stop)
        #expect(ReconnectPolicy.action(handshakeStatus: 403, retryAfter: nil) == .stop)
    }

    @Test func honorsRetryAfterOnThrottlingAndDraining() {
        #expect(ReconnectPolicy.action(handshakeStatus: 429, retryAfter: .seconds(5)) == .backOff(atLeast: .seconds(5)))
        #expect(ReconnectPolicy.action(handshakeStatus: 503, retryAfter: .seconds(2)) == .backOff(atLeast: .seconds(2)))
        #expect(ReconnectPolicy.action(handshakeStatus: 503, retryAfter: nil) == .backOff(atLeast: nil))
        #expect(ReconnectPolicy.action(handshakeStatus: 502, retryAfter: nil) == .backOff(atLeast: nil))
    }

    @Test func readsRetryAfterSeconds() {
        #expect(ReconnectPolicy.retryAfter(header: "5") == .seconds(5))
        #expect(ReconnectPolicy.retryAfter(header: " 12 ") == .seconds(12))
        #expect(ReconnectPolicy.retryAfter(header: "Wed, 21 Oct 2015 07:28:00 GMT") == nil)
        #expect(ReconnectPolicy.retryAfter(header: "-1") == nil)
        #expect(ReconnectPolicy.retryAfter(header: nil) == nil)
    }

    @Test func explainsRefusalsToTheDevice() {
        #expect(StopReason.message(forRefusal: "revoked_key") == "This device's key was revoked.")
        #expect(StopReason.message(forRefusal: "expired_key") == "This device's key has expired.")
        #expect(StopReason.message(forRefusal: "something_new").contains("something_new"))
    }
}
