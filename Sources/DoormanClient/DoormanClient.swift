// SPDX-License-Identifier: Apache-2.0
public import Foundation
import WireCodec

/// A device's session with Doorman: connects with its API key, reconnects with backoff, restores
/// its subscriptions, and stops for good when the key is revoked, suspended, expired, rotated or
/// deleted (close 4000-4099, or a 401 at the handshake).
///
///     let client = DoormanClient(url: URL(string: "ws://gw.example:8080/ws")!, key: deviceKey)
///     let welcome = try await client.connect()
///     try await client.subscribe(channel: "door-events", property: "hotel-1") { event in print(event.data) }
///     let answer = try await client.call("pms:checkIn", body: ["room": 101], property: "hotel-1")
///     for await event in client.events { if case .stopped(let why) = event { show(why.message) } }
///
/// Every request has a timeout and throws only `DoormanError`. Requests made while the client
/// is reconnecting wait for the next session, within their timeout.
public actor DoormanClient {
    /// Lifecycle events in order: connected, disconnected (with the retry delay), notices,
    /// permission changes, expiry warnings, lost subscriptions, and finally `.stopped`, after
    /// which the stream finishes. One reader.
    public nonisolated let events: AsyncStream<DoormanEvent>
    /// The gateway's WebSocket URL (`ws://host:port/ws`).
    public nonisolated let url: URL
    public nonisolated let options: Options

    let eventSink: AsyncStream<DoormanEvent>.Continuation
    /// The secret: only ever written to the handshake, never logged or described.
    let key: String

    // MARK: State (actor-isolated)

    enum Phase: Equatable {
        case idle
        case running
        case stopped(StopReason)
    }

    /// A subscription the client restores after every reconnect.
    struct Subscription {
        var handler: @Sendable (ChannelEvent) -> Void
        var generation: Int
    }

    /// The connection in use and, once the welcome came, its session.
    struct Link {
        let id: Int
        let connection: WebSocketClientConnection
        var welcome: Welcome?
        var welcomedAt: ContinuousClock.Instant?
        var notice: Notice?
    }

    /// A request waiting for its `result` or `error`.
    struct PendingRequest {
        let continuation: CheckedContinuation<Result<[String: JSONValue], DoormanError>, Never>
        let timer: Task<Void, Never>
        let linkID: Int
    }

    /// A caller waiting for a session (connect, or a request during a reconnect).
    struct SessionWaiter {
        let continuation: CheckedContinuation<Result<Welcome, DoormanError>, Never>
        let timer: Task<Void, Never>?
    }

    var phase = Phase.idle
    var link: Link?
    var supervisor: Task<Void, Never>?
    var subscriptions: [ChannelAddress: Subscription] = [:]
    var pending: [Int: PendingRequest] = [:]
    var sessionWaiters: [Int: SessionWaiter] = [:]
    var stopWaiters: [CheckedContinuation<StopReason, Never>] = []
    var nextID = 0
    var linkCount = 0

    /// - Parameters:
    ///   - url: the gateway's `ws://` URL.
    ///   - key: the device's API key (`dmk_…`), sent in `X-API-Key`.
    public init(url: URL, key: String, options: Options = Options()) {
        self.url = url
        self.key = key
        self.options = options
        (events, eventSink) = AsyncStream.makeStream(of: DoormanEvent.self, bufferingPolicy: .bufferingNewest(max(1, options.eventBuffer)))
    }

    // MARK: - Lifecycle

    /// Starts the client (once) and waits for a session: the first welcome, or the current one.
    /// Transient failures are retried with backoff meanwhile.
    /// - Parameters:
    ///   - timeout: give up waiting after this long (the client keeps trying in the background);
    ///     nil waits until a session opens or the client stops.
    /// - Throws: `.stopped` (with the reason) when the key is refused for good, `.timeout`,
    ///   `.invalidURL`, `.cancelled`.
    @discardableResult
    public func connect(timeout: Duration? = nil) async throws(DoormanError) -> Welcome {
        try start()
        return try await awaitSession(deadline: timeout.map { .now + $0 })
    }

    /// The current session's welcome, updated by `permissions_changed`; nil while disconnected.
    public var welcome: Welcome? { link?.welcome }

    /// Why the client stopped, once it has.
    public var stopReason: StopReason? {
        if case .stopped(let reason) = phase { return reason }
        return nil
    }

    /// Waits until the client stops for good and returns why.
    public func stopped() async -> StopReason {
        if case .stopped(let reason) = phase { return reason }
        return await withCheckedContinuation { stopWaiters.append($0) }
    }

    /// Ends the session (close 1000) and stops for good: no more reconnects. Pending requests
    /// fail with `.stopped`.
    public func close() {
        guard !isStopped else { return }
        let connection = link?.connection
        stop(.closedByClient)
        connection?.close(code: .normal)
    }

    // MARK: - Requests

    /// Subscribes to `channel` within `property`; `handler` gets every event, on this actor, in
    /// order (keep it short, or hand the work on). The subscription is restored after every
    /// reconnect until `unsubscribe` or a `permissions_changed` that removes it. Subscribing
    /// again to the same channel replaces the handler.
    /// - Throws: the server's `forbidden` and other errors, `.timeout`, `.connectionLost`,
    ///   `.stopped`; the subscription is not kept then.
    public func subscribe(channel: String, property: String? = nil,
                          handler: @escaping @Sendable (ChannelEvent) -> Void) async throws(DoormanError) {
        let address = ChannelAddress(channel: channel, property: property)
        nextID += 1
        let generation = nextID
        // Installed before the request goes out: events may follow the result at once.
        subscriptions[address] = Subscription(handler: handler, generation: generation)
        do {
            _ = try await request(address.fields(type: "subscribe"), timeout: options.requestTimeout, what: "subscribe")
        } catch {
            if subscriptions[address]?.generation == generation { subscriptions[address] = nil }
            throw error
        }
    }

    /// Stops events from `channel` within `property`. While disconnected it only forgets the
    /// subscription (the next session will not have it).
    public func unsubscribe(channel: String, property: String? = nil) async throws(DoormanError) {
        let address = ChannelAddress(channel: channel, property: property)
        subscriptions[address] = nil
        guard let link, link.welcome != nil else { return }
        _ = try await exchange(address.fields(type: "unsubscribe"), on: link.id, deadline: .now + options.requestTimeout, what: "unsubscribe")
    }

    /// Publishes `data` on `channel` within `property` (needs `channel:publish.<channel>`).
    public func publish(channel: String, property: String? = nil, data: JSONValue) async throws(DoormanError) {
        var fields = ChannelAddress(channel: channel, property: property).fields(type: "publish")
        fields["data"] = data
        _ = try await request(fields, timeout: options.requestTimeout, what: "publish")
    }

    /// Calls an upstream service through the gateway, e.g. `"pms:checkIn"`.
    /// - Parameters:
    ///   - action: `<service>:<api_name>`.
    ///   - body: the JSON body the upstream gets (nil: none).
    ///   - property: the property the call is for, if any.
    ///   - timeout: overrides `options.callTimeout`.
    /// - Returns: the upstream's 2xx answer.
    /// - Throws: `DoormanError`: `rate_limited` and `too_many_calls` with `retryAfter`, `forbidden`,
    ///   `upstream_status` (with `status` and `body`), `upstream_unavailable`, `.timeout`, …
    public func call(_ action: String, body: JSONValue? = nil, property: String? = nil,
                     timeout: Duration? = nil) async throws(DoormanError) -> CallResult {
        var fields: [String: JSONValue] = ["type": "call", "call": .string(action)]
        if let body { fields["body"] = body }
        if let property { fields["property"] = .string(property) }
        let answer = try await request(fields, timeout: timeout ?? options.callTimeout, what: action)
        return CallResult(status: answer["status"]?.intValue ?? 200, body: answer["body"] ?? .null,
                          bodyEncoding: answer["bodyEncoding"]?.stringValue)
    }

    /// A round trip to the gateway (`{"type":"ping"}`).
    public func ping() async throws(DoormanError) {
        _ = try await request(["type": "ping"], timeout: options.requestTimeout, what: "ping")
    }
}

extension ChannelAddress {
    /// The request fields naming this channel.
    func fields(type: String) -> [String: JSONValue] {
        var fields: [String: JSONValue] = ["type": .string(type), "channel": .string(channel)]
        if let property { fields["property"] = .string(property) }
        return fields
    }
}
