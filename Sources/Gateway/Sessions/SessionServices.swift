// SPDX-License-Identifier: Apache-2.0
import Foundation
public import GatewayCore
import Logging
import Synchronization
import Transport
import WebSocketServer
import WireCodec

/// Session limits and timings.
public struct SessionPolicy: Sendable, Equatable {
    /// Seconds before a key's expiry at which live sessions get an `expiry_warning`.
    public var expiryWarning: Double = 300
    /// Messages per second a key may send (all its sessions on this node), and the burst allowed.
    public var messagesPerSecond: Double = 100
    public var messageBurst: Double = 200
    /// Calls per second a key may make (WebSocket and HTTP, all its sessions on this node), and the burst.
    public var callsPerSecond: Double = 50
    public var callBurst: Double = 100
    /// Handshakes per second per key (0 = no per-key limit; the per-address limit still applies).
    public var keyHandshakesPerSecond: Double = 0
    public var keyHandshakeBurst: Double = 20
    /// Rejected messages (over the rate) after which the session is closed with 4129.
    public var floodTolerance = 100
    /// Live sessions per key on this node; more get 429. 0 = no cap.
    public var maxSessionsPerKey = 0
    /// `POST /v1/publish` requests per second a key may make on this node, and the burst allowed
    /// (0 = no limit). Past it: 429 with Retry-After.
    public var publishesPerSecond: Double = 100
    public var publishBurst: Double = 200
    /// Handshakes per second per client address, and the burst allowed. 0 = no limit.
    public var handshakesPerSecond: Double = 50
    public var handshakeBurst: Double = 100
    /// Origins browsers may connect from (empty = any).
    public var allowedOrigins: [String] = []
    /// Client networks (CIDR) that may open sessions (empty = any); others get 403.
    public var allowedNetworks: [String] = []
    /// Accept `?key=` in the URL (off: it ends up in proxy logs and browser history).
    public var allowQueryKey = false
    /// Seconds a device waits before trying again after a suspend, a disabled user or a kick (the
    /// notice's `retryAfterMs`, and `Retry-After` on the refused handshakes meanwhile); clients add
    /// up to as much again in jitter, so a resumed device is back within twice this.
    public var reversibleRetry: Double = 30

    public init() {}

    /// The server's defaults, the last layer under a key's and its group's own limits.
    public var defaultLimits: RateLimits {
        RateLimits(messagesPerSecond: messagesPerSecond, messageBurst: messageBurst, callsPerSecond: callsPerSecond, callBurst: callBurst,
                   handshakesPerSecond: keyHandshakesPerSecond, handshakeBurst: keyHandshakeBurst)
    }
}

/// A token bucket per name (key id, address), shared by all loops.
final class RateLimiter: Sendable {
    private struct Bucket { var tokens: Double; var updated: UInt64; var rate: Double; var burst: Double }
    private struct State {
        var buckets: [String: Bucket] = [:]
        var lastPrune: UInt64 = 0
    }
    private let state = Mutex(State())
    /// Names tracked before full (idle) buckets are forgotten.
    private static let pruneAbove = 100_000
    let rate: Double
    let burst: Double

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
    }

    /// Names currently tracked.
    var trackedNames: Int { state.withLock { $0.buckets.count } }

    /// Takes one token at the limiter's own rate; nil if allowed, else seconds until one is available.
    func take(_ name: String, now: UInt64 = monotonicNanoseconds()) -> Double? {
        take(name, rate: rate, burst: burst, now: now)
    }

    /// Takes one token from `name`'s bucket at `rate`/`burst` (a key's own limits). A rate of 0
    /// means no limit.
    func take(_ name: String, rate: Double, burst: Double, now: UInt64 = monotonicNanoseconds()) -> Double? {
        guard rate > 0 else { return nil }
        let burst = max(1, burst)
        return state.withLock { s -> Double? in
            var b = s.buckets[name] ?? Bucket(tokens: burst, updated: now, rate: rate, burst: burst)
            // `now` was read before the lock: another loop may have updated the bucket with a later
            // time meanwhile. Time never runs backwards here (no wrap-around refilling the burst).
            let now = max(now, b.updated)
            b.tokens = min(burst, b.tokens + Double(now - b.updated) / 1e9 * rate)
            b.updated = now
            b.rate = rate
            b.burst = burst
            defer {
                s.buckets[name] = b
                // Forget names whose bucket has refilled (they behave as new ones), at most once a
                // second, so a flood of distinct names never makes every call scan the table.
                if s.buckets.count > Self.pruneAbove, now &- s.lastPrune > 1_000_000_000 {
                    s.lastPrune = now
                    s.buckets = s.buckets.filter { $0.value.tokens + Double(now &- $0.value.updated) / 1e9 * $0.value.rate < $0.value.burst }
                }
            }
            if b.tokens >= 1 { b.tokens -= 1; return nil }
            return (1 - b.tokens) / rate
        }
    }
}

/// What every session shares: the identity cache, the per-loop hubs, limits, counters.
final class SessionServices: Sendable {
    let cache: IdentityCache
    let policy: SessionPolicy
    /// The engine's settings (compression, for events prepared once per publish).
    let server: ServerConfiguration
    let logger: Logger
    let usage: KeyUsageRecorder?
    let messageLimiter: RateLimiter
    let handshakeLimiter: RateLimiter
    /// Per key: `POST /v1/publish`.
    let publishLimiter: RateLimiter
    /// Per key: calls and handshakes (at each key's effective limits).
    let callLimiter = RateLimiter(rate: 0, burst: 1)
    let keyHandshakeLimiter = RateLimiter(rate: 0, burst: 1)
    /// Upstream calls (nil when no upstream is configured).
    let calls: CallService?
    let networks: NetworkAllowlist
    let metrics = GatewayMetrics()
    /// Live sessions on this node.
    let liveSessions = Atomic<Int>(0)
    private let hubList = Mutex<[SessionHub]>([])
    private let sessionsPerKey = Mutex<[String: Int]>([:])
    private let httpCallsPerKey = CappedCounts<String>()
    /// This node's name (session listings, receipts).
    let nodeName: String
    /// The cluster this node belongs to (nil on one node with SQLite).
    let cluster: ClusterNode?
    /// Per reason: the notice and close frame, encoded once.
    let endFrames: [SessionEndReason: [UInt8]]

    init(cache: IdentityCache, policy: SessionPolicy, server: ServerConfiguration, logger: Logger, usage: KeyUsageRecorder?, calls: CallService? = nil,
         nodeName: String = SessionServices.hostName, cluster: ClusterNode? = nil) {
        self.calls = calls
        self.nodeName = nodeName
        self.cluster = cluster
        self.cache = cache
        self.policy = policy
        self.server = server
        self.logger = logger
        self.usage = usage
        messageLimiter = RateLimiter(rate: policy.messagesPerSecond, burst: policy.messageBurst)
        networks = (try? NetworkAllowlist(policy.allowedNetworks)) ?? NetworkAllowlist.denyAll
        handshakeLimiter = RateLimiter(rate: policy.handshakesPerSecond, burst: policy.handshakeBurst)
        publishLimiter = RateLimiter(rate: policy.publishesPerSecond, burst: policy.publishBurst)
        endFrames = SessionMessage.endFrames(retryAfterMs: Int(policy.reversibleRetry * 1000))
    }

    /// A key's effective limits: its own, then its group's, then the server's.
    /// (Per handshake and per session: spelled out, no arrays or key paths.)
    func limits(key: APIKey, groups: [String: PermissionGroup]) -> RateLimits {
        let own = key.limits
        let group = key.groupID.flatMap { groups[$0]?.limits }
        let p = policy
        return RateLimits(
            messagesPerSecond: own?.messagesPerSecond ?? group?.messagesPerSecond ?? p.messagesPerSecond,
            messageBurst: own?.messageBurst ?? group?.messageBurst ?? p.messageBurst,
            callsPerSecond: own?.callsPerSecond ?? group?.callsPerSecond ?? p.callsPerSecond,
            callBurst: own?.callBurst ?? group?.callBurst ?? p.callBurst,
            handshakesPerSecond: own?.handshakesPerSecond ?? group?.handshakesPerSecond ?? p.keyHandshakesPerSecond,
            handshakeBurst: own?.handshakeBurst ?? group?.handshakeBurst ?? p.keyHandshakeBurst)
    }

    func attach(loops: [EventLoop]) {
        hubList.withLock { $0 = loops.map(SessionHub.init) }
    }

    var hubs: [SessionHub] { hubList.withLock { $0 } }

    func hub(for loop: EventLoop) -> SessionHub? {
        hubList.withLock { $0.indices.contains(loop.index) ? $0[loop.index] : nil }
    }

    /// Reserves a session slot for a key; false at the cap (counted over every node of a cluster,
    /// the others' counts as of their last sync, at most about a second old).
    func reserveSession(for keyID: String) -> Bool {
        let elsewhere = policy.maxSessionsPerKey > 0 ? cluster?.remoteSessions(of: keyID) ?? 0 : 0
        return sessionsPerKey.withLock { counts in
            let n = counts[keyID, default: 0] + elsewhere
            if policy.maxSessionsPerKey > 0, n >= policy.maxSessionsPerKey { return false }
            counts[keyID, default: 0] += 1
            liveSessions.add(1, ordering: .relaxed)
            return true
        }
    }

    /// Reserves one of a key's concurrent HTTP calls on this node (a session's calls have their own
    /// cap); false at `limit`.
    func reserveHTTPCall(for keyID: String, limit: Int) -> Bool { httpCallsPerKey.reserve(keyID, limit: limit) }

    func releaseHTTPCall(for keyID: String) { httpCallsPerKey.release(keyID) }

    /// Live sessions of a key on this node.
    func sessionsOf(_ keyID: String) -> Int { sessionsPerKey.withLock { $0[keyID] ?? 0 } }

    /// Live sessions of a key on every node (the others' as of their last sync).
    func clusterSessionsOf(_ keyID: String) -> Int { sessionsOf(keyID) + (cluster?.remoteSessions(of: keyID) ?? 0) }

    func releaseSession(for keyID: String) {
        sessionsPerKey.withLock { counts in
            let n = counts[keyID, default: 1] - 1
            counts[keyID] = n > 0 ? n : nil
            liveSessions.subtract(1, ordering: .relaxed)
        }
    }

    /// Publishes an event: on one node, straight to this node's subscribers; in a cluster, written
    /// to the shared feed (in order, one at a time per node), from which every node, this one
    /// included, delivers it. `stored` learns whether it was accepted (durable, in a cluster).
    func publish(channel: String, property: String?, data: Any, stored: @escaping @Sendable (Bool) -> Void = { _ in }) {
        let encoded = SessionMessage.encodeAny(data)
        guard let cluster else {
            deliver(channel: channel, property: property, data: encoded)
            return stored(true)
        }
        cluster.publish(channel: channel, property: property, data: String(decoding: encoded, as: UTF8.self), stored: stored)
    }

    /// Encodes an event once and hands the same bytes to every loop's subscribers.
    func deliver(channel: String, property: String?, data: [UInt8]) {
        let message = PreparedMessage(text: SessionMessage.event(channel: channel, property: property, data: data), for: server)
        let key = SessionMessage.channelKey(channel, property: property)
        let metrics = metrics
        let start = monotonicNanoseconds()
        metrics.publishes.add()
        everyHub({ $0.deliver(message, to: key) }, done: { delivered in
            metrics.deliveries.add(delivered)
            metrics.publishToLastWrite.observe(Double(monotonicNanoseconds() - start) / 1e9)
        })
    }

    /// Runs `body` on every loop's hub and reports the sum of what each returned (a receipt).
    @discardableResult
    func everyHub(_ body: @escaping @Sendable (SessionHub) -> Int, done: @escaping @Sendable (Int) -> Void = { _ in }) -> ChangeReceipt {
        let hubs = self.hubs
        let receipt = ChangeReceipt(loops: hubs.count)
        if hubs.isEmpty { done(0); return receipt }
        for hub in hubs {
            hub.loop.execute {
                if receipt.loopDone(ended: body(hub)) { done(receipt.ended) }
            }
        }
        return receipt
    }
}
