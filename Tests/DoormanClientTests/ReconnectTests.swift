// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import DoormanClient

/// The client's reconnect behaviour end to end, against a scripted fake gateway.
@Suite struct ReconnectTests {
    static var options: DoormanClient.Options {
        var options = DoormanClient.Options()
        options.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(200))
        options.connectTimeout = .seconds(5)
        return options
    }

    @Test(.timeLimit(.minutes(1)))
    func followsRetryAfterAndTheCloseCodeRangesThenStops() async throws {
        let gateway = try FakeGateway(script: [
            .refuse(429, headers: ["Retry-After: 1"], body: #"{"error":"handshake_rate"}"#),
            .session(messages: [#"{"type":"permissions_changed","scopes":["channel:subscribe.door-*"],"properties":["hotel-1"],"rules":[],"expiresAt":null,"removedSubscriptions":[{"channel":"billing","property":"hotel-1"}]}"#],
                     closeCode: 4129, reason: "rate_limited"),
            .session(messages: [], closeCode: 4200, reason: "reconnect"),
            .session(messages: [#"{"type":"expiry_warning","expiresAt":"2030-01-01T00:00:00Z"}"#,
                                #"{"type":"notice","reason":"key_expired","code":4003,"reconnect":false,"message":"This device's key has expired."}"#],
                     closeCode: 4003, reason: "key_expired"),
        ])
        defer { gateway.close() }
        let client = DoormanClient(url: gateway.url, key: "dmk_test", options: Self.options)
        let log = EventLog()
        log.follow(client.events)

        let started = ContinuousClock.now
        try await client.connect(timeout: .seconds(20))
        // The 429's Retry-After held the second attempt back at least a second.
        #expect(started.duration(to: .now) >= .seconds(1))
        let reason = try await withDeadline(.seconds(20)) { await client.stopped() }
        #expect(reason == StopReason(source: .closeFrame, code: 4003, reason: "key_expired", message: "This device's key has expired."))

        let drops = await log.events.compactMap { event -> Disconnect? in if case .disconnected(let d) = event { d } else { nil } }
        #expect(drops.map(\.code) == [429, 4129, 4200])
        #expect(drops[0].retryIn >= .seconds(1) && drops[0].reason == "handshake_rate")
        #expect(drops[1].retryIn <= .milliseconds(200))
        #expect(drops[2].retryIn == .zero)
        #expect(await log.events.contains(.expiryWarning(expiresAt: Date(timeIntervalSince1970: 1_893_456_000))))
        let change = await log.events.compactMap { event -> PermissionsChange? in if case .permissionsChanged(let c) = event { c } else { nil } }.first
        #expect(change?.scopes == ["channel:subscribe.door-*"])
        #expect(change?.removedSubscriptions == [ChannelAddress(channel: "billing", property: "hotel-1")])

        // Stopped for good: no fifth connection, and the key went in X-API-Key every time.
        try await Task.sleep(for: .milliseconds(800))
        #expect(gateway.accepted == 4)
        #expect(gateway.requests.allSatisfy { $0.contains("X-API-Key: dmk_test\r\n") })
    }

    @Test(.timeLimit(.minutes(1)))
    func stopsWhenTheHandshakeSaysRevoked() async throws {
        let gateway = try FakeGateway(script: [.refuse(401, headers: [], body: #"{"error":"revoked_key"}"#)])
        defer { gateway.close() }
        let client = DoormanClient(url: gateway.url, key: "dmk_test", options: Self.options)
        let error = await ScenarioTests.failure { () async throws(DoormanError) in try await client.connect(timeout: .seconds(10)) }
        #expect(error?.stop == StopReason(source: .handshake, code: 401, reason: "revoked_key", message: "This device's key was revoked."))
        try await Task.sleep(for: .milliseconds(500))
        #expect(gateway.accepted == 1)
    }

    @Test(.timeLimit(.minutes(1)))
    func requestsTimeOutWhenNoSessionComes() async throws {
        // A server that accepts TCP but never answers the handshake.
        let gateway = try FakeGateway(script: [])
        defer { gateway.close() }
        var options = Self.options
        options.requestTimeout = .milliseconds(300)
        let client = DoormanClient(url: gateway.url, key: "dmk_test", options: options)
        // The request's own timeout ends it: `.timeout`, not a handshake or connection error.
        let error = await ScenarioTests.failure { () async throws(DoormanError) in try await client.ping() }
        #expect(error?.code == .timeout)
        await client.close()
        #expect(await client.stopReason == StopReason.closedByClient)
    }
}
