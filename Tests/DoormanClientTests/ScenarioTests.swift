// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import DoormanClient

/// The shared client scenario against the real gateway binary (clients/scenario/harness.py):
/// connect, subscribe, receive a publish, call an upstream, get throttled and recover, server
/// restart → reconnect and resubscribe, key suspended → wait and come back after the resume, key
/// revoked → stop with the reason, and no more handshakes.
@Suite(.serialized) struct ScenarioTests {
    /// Fast reconnects for the test; the defaults are for devices.
    static var options: DoormanClient.Options {
        var options = DoormanClient.Options()
        options.backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(2))
        options.restartPause = .milliseconds(300)
        options.requestTimeout = .seconds(10)
        options.callTimeout = .seconds(10)
        options.connectTimeout = .seconds(5)
        return options
    }

    @Test(.timeLimit(.minutes(3)))
    func deviceLivesThroughThrottlingARestartAndRevocation() async throws {
        let harness: ScenarioHarness
        do {
            harness = try await ScenarioHarness.start()
        } catch {
            Issue.record("the scenario cannot run: \(error)")
            return
        }
        do {
            try await scenario(harness)
        } catch {
            Issue.record("scenario failed: \(error)\n--- harness output ---\n\(harness.log)")
        }
        await harness.stop()
    }

    func scenario(_ harness: ScenarioHarness) async throws {
        let info = try await harness.info()
        let client = DoormanClient(url: info.url, key: info.key, options: Self.options)
        let log = EventLog()
        log.follow(client.events)
        let (received, deliver) = AsyncStream.makeStream(of: ChannelEvent.self)
        var inbox = received.makeAsyncIterator()

        // 1. Connect: the welcome names the key and its property.
        let welcome = try await client.connect(timeout: .seconds(20))
        #expect(welcome.key.id == info.keyID)
        #expect(welcome.properties.contains(info.property))
        #expect(welcome.scopes.contains("channel:*"))

        // 2. Subscribe and receive a publish.
        try await client.subscribe(channel: info.channel, property: info.property) { deliver.yield($0) }
        try await harness.post("/publish", ["data": ["door": 12, "n": 1]])
        let first = try await next(&inbox)
        #expect(first.channel == info.channel && first.property == info.property && first.data["n"]?.intValue == 1)

        // 3. Call the upstream: 200 with its JSON body.
        let answer = try await client.call(info.call, body: ["room": 101], property: info.property)
        #expect(answer.status == 200)
        #expect(answer.body.objectValue != nil)

        // 4. Throttled (callBurst 3, 0.5/s): a quick call gets rate_limited with a hint …
        var throttled: DoormanError?
        for _ in 0..<6 where throttled == nil {
            throttled = await Self.failure { () async throws(DoormanError) in try await client.call(info.call, body: ["room": 102], property: info.property) }
            if let error = throttled, error.code != .rateLimited { throw error }
        }
        let hint = try #require(throttled?.retryAfter, "no rate_limited with retryAfter in 6 quick calls")
        #expect(hint > .zero && hint <= .seconds(3))
        // … and after waiting the hint a call goes through.
        try await Task.sleep(for: hint + .milliseconds(100))
        #expect(try await client.call(info.call, body: ["room": 103], property: info.property).status == 200)

        // 5. The server restarts: 1001, a reconnect, the subscription restored.
        let before = await log.count
        try await harness.post("/restart")
        let dropped = await log.next(after: before) { if case .disconnected = $0 { true } else { false } }
        if case .disconnected(let disconnect)? = dropped { #expect(disconnect.code == 1001) } else { Issue.record("no disconnect after the restart") }
        let back = await log.next(after: before, within: .seconds(30)) { if case .connected = $0 { true } else { false } }
        let seen = await log.events
        #expect(back != nil, "no reconnect after the restart: \(seen)")
        try await harness.post("/publish", ["data": ["door": 12, "n": 2]])
        let second = try await next(&inbox)
        #expect(second.data["n"]?.intValue == 2)

        // 5b. The key is suspended: close 4102 with the server's hint (1 s in the harness); the
        // tries meanwhile get 401 suspended_key with Retry-After; never a stop; after the resume
        // the device is back by itself with its subscription.
        let beforeSuspend = await log.count
        try await harness.post("/suspend")
        let suspended = await log.next(after: beforeSuspend) { if case .disconnected = $0 { true } else { false } }
        guard case .disconnected(let closed)? = suspended else { Issue.record("no disconnect after the suspend"); return }
        #expect(closed.code == 4102 && closed.reason == "key_suspended", "\(closed)")
        #expect(closed.retryIn >= .seconds(1) && closed.retryIn < .seconds(2), "\(closed.retryIn)")
        let refusedWhileSuspended = await log.next(after: beforeSuspend) {
            if case .disconnected(let d) = $0, d.code == 401 { true } else { false }
        }
        if case .disconnected(let d)? = refusedWhileSuspended {
            #expect(d.reason == "suspended_key" && d.retryIn >= .seconds(1) && d.retryIn < .seconds(2), "\(d)")
        } else { Issue.record("no try while suspended") }
        try await harness.post("/resume")
        let resumed = await log.next(after: beforeSuspend, within: .seconds(10)) { if case .connected = $0 { true } else { false } }
        let sinceSuspend = await log.events
        #expect(resumed != nil, "the device did not come back after the resume: \(sinceSuspend)")
        try await harness.post("/publish", ["data": ["door": 12, "n": 3]])
        let third = try await next(&inbox)
        #expect(third.data["n"]?.intValue == 3)

        // 6. The key is revoked: the notice, close 4001, a stop with the reason.
        let beforeRevoke = await log.count
        try await harness.post("/revoke")
        let reason = try await withDeadline(.seconds(15)) { await client.stopped() }
        #expect(reason.code == 4001)
        #expect(reason.reason == "key_revoked")
        #expect(reason.message == "This device's key was revoked.")
        #expect(reason.source == .closeFrame)
        let notice = await log.next(after: beforeRevoke) { if case .notice = $0 { true } else { false } }
        if case .notice(let n)? = notice { #expect(n.code == 4001 && n.reconnect == false) } else { Issue.record("no notice") }
        let last = await log.next { if case .stopped = $0 { true } else { false } }
        #expect(last == .stopped(reason))
        // Requests after the stop fail at once with the reason.
        await #expect(throws: DoormanError.stopped(reason)) { try await client.ping() }

        // 7. No more connection attempts: the handshake count stays put for a few seconds.
        let handshakes = try await harness.handshakes()
        try await Task.sleep(for: .seconds(3))
        #expect(try await harness.handshakes() == handshakes)

        // 8. A fresh client with the revoked key: 401 revoked_key → stop for good, one handshake only.
        let fresh = DoormanClient(url: info.url, key: info.key, options: Self.options)
        if let error = await Self.failure({ () async throws(DoormanError) in try await fresh.connect(timeout: .seconds(20)) }) {
            #expect(error.code == .stopped)
            #expect(error.stop?.source == .handshake)
            #expect(error.stop?.code == 401)
            #expect(error.stop?.reason == "revoked_key")
            #expect(error.stop?.message == "This device's key was revoked.")
        } else {
            Issue.record("a revoked key connected")
        }
        try await Task.sleep(for: .seconds(2))
        #expect(try await harness.handshakes() == handshakes + 1)
    }

    /// The error `body` throws, nil when it succeeds.
    static func failure<T>(_ body: () async throws(DoormanError) -> T) async -> DoormanError? {
        do {
            _ = try await body()
            return nil
        } catch {
            return error
        }
    }

    /// The next channel event, or a failure after `timeout`.
    func next(_ inbox: inout AsyncStream<ChannelEvent>.Iterator, timeout: Duration = .seconds(15)) async throws -> ChannelEvent {
        let box = IteratorBox(inbox)
        let event = try await withDeadline(timeout) { await box.next() }
        inbox = box.iterator
        return try #require(event, "the channel stream ended")
    }
}

/// Lets an iterator cross into the deadline's child task (used by one task at a time).
final class IteratorBox: @unchecked Sendable {
    // @unchecked Sendable: only the awaiting test task touches `iterator`, one call at a time.
    var iterator: AsyncStream<ChannelEvent>.Iterator
    init(_ iterator: AsyncStream<ChannelEvent>.Iterator) { self.iterator = iterator }
    func next() async -> ChannelEvent? { await iterator.next(isolation: nil) }
}

struct DeadlinePassed: Error, CustomStringConvertible {
    let timeout: Duration
    var description: String { "nothing within \(timeout)" }
}

/// Runs `body`, failing with `DeadlinePassed` if it takes longer than `timeout`.
func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { await body() }
        group.addTask { try? await Task.sleep(for: timeout); return nil }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw DeadlinePassed(timeout: timeout) }
        return value
    }
}
