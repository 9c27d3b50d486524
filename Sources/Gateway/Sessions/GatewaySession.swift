// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import Synchronization
import GatewayCore
import Transport
import WebSocketServer
import WireCodec

/// One device's live session: its key, user and rights, its subscriptions, its expiry timers.
/// Lives on its connection's loop.
final class GatewaySession: WebSocketSession {
    let id: UInt64
    let keyID: String
    let userID: String
    /// The secret's digest this session presented (a rotation ends sessions of the old one).
    let digest: KeyDigest
    private let services: SessionServices
    private let hub: SessionHub
    private(set) var connection: Connection?
    private var key: APIKey
    private var user: User
    private var groups: [String: PermissionGroup]
    /// `callScopes()` for the current key, user and groups (nil: not worked out since they changed).
    private var cachedCallScopes: [String]?
    private var previousUntil: Date?
    /// The identity cache generation the session opened with (for the welcome's cached text).
    private let generation: UInt64
    /// channel key → (channel, property), for re-checking after a rights change.
    private(set) var subscribed: [String: (channel: String, property: String?)] = [:]
    private var timers: [UInt64] = []
    private var rejectedMessages = 0
    /// The key's effective rate limits (its own, its group's, the server's).
    private var limits: RateLimits
    /// Calls waiting for their upstream.
    private var calls: [ObjectIdentifier: SessionCall] = [:]
    private var ended = false
    /// For the admin API's session list.
    let address: String
    let userAgent: String?
    let since = Date()
    private var lastActivity = Date()

    var subscriptions: Dictionary<String, (channel: String, property: String?)>.Keys { subscribed.keys }
    var isLive: Bool { !ended && connection?.isOpen == true }

    init(id: UInt64, resolved: IdentityCache.Resolved, services: SessionServices, hub: SessionHub, address: String, userAgent: String?) {
        self.id = id
        self.address = address
        self.userAgent = userAgent.map { String($0.prefix(256)) }
        keyID = resolved.key.id
        userID = resolved.user.id
        digest = resolved.digest
        key = resolved.key
        user = resolved.user
        groups = resolved.groups
        previousUntil = resolved.previousUntil
        generation = resolved.generation
        limits = services.limits(key: resolved.key, groups: resolved.groups)
        self.services = services
        self.hub = hub
    }

    // MARK: - WebSocketSession

    func opened(_ connection: Connection) {
        self.connection = connection
        hub.add(self)
        connection.send(text: welcome())
        scheduleTimers()
    }

    func received(_ message: WebSocketMessage, on connection: Connection) {
        guard !ended else { return }
        services.metrics.messagesIn.add()
        lastActivity = Date()
        if let wait = services.messageLimiter.take(keyID, rate: limits.messagesPerSecond ?? 0, burst: limits.messageBurst ?? 1) {
            rejectedMessages += 1
            if rejectedMessages > services.policy.floodTolerance { end(.rateLimited); return }
            return reply(SessionMessage.error(nil, "rate_limited", "too many messages", [("retryAfterMs", .int(RetryAfter.milliseconds(wait)))]))
        }
        guard message.isText,
              let object = try? JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any] else {
            return reply(SessionMessage.error(nil, "invalid_message", "messages are JSON objects in text frames"))
        }
        let requestID = object["id"]
        switch object["type"] as? String {
        case "subscribe": subscribe(object, requestID)
        case "unsubscribe": unsubscribe(object, requestID)
        case "publish": publish(object, requestID)
        case "ping": reply(SessionMessage.result(requestID, [("pong", .bool(true))]))
        case "call": call(object, requestID)
        case let other:
            reply(SessionMessage.error(requestID, "unknown_type", "unknown message type \(other ?? "(none)")"))
        }
    }

    func closed(_ connection: Connection, code: CloseCode?) {
        ended = true
        cancelCalls()
        hub.remove(self)
        for timer in timers { hub.loop.cancel(timer) }
        timers = []
        self.connection = nil
        services.releaseSession(for: keyID)
        services.logger.info("session closed", metadata: ["session.id": "\(id)", "key.id": "\(keyID)", "code": "\(code?.rawValue ?? 1006)"])
    }

    func info(node: String) -> SessionInfo {
        SessionInfo(id: String(id), keyID: keyID, userID: userID, address: address, userAgent: userAgent, since: since,
                    lastActivity: lastActivity, node: node, subscriptions: subscribed.count)
    }

    // MARK: - Requests

    private func channelRequest(_ object: [String: Any], _ id: Any?, verb: String) -> (channel: String, property: String?)? {
        guard let channel = object["channel"] as? String else {
            reply(SessionMessage.error(id, "invalid_request", "channel is required"))
            return nil
        }
        let action = "channel:\(verb).\(channel)"
        if ActionName.validateAction(action) != nil {
            reply(SessionMessage.error(id, "invalid_channel", "channel names are letters, digits, _ and -, in segments separated by . or /"))
            return nil
        }
        guard case .success(let property) = PropertyName.parse(json: object["property"]) else {
            reply(SessionMessage.invalidProperty(id))
            return nil
        }
        let decision = authorize(action, property)
        guard decision.allowed else {
            reply(SessionMessage.refusal(id, decision, "this key may not \(verb) \(channel)"))
            return nil
        }
        return (channel, property)
    }

    private func subscribe(_ object: [String: Any], _ id: Any?) {
        guard let (channel, property) = channelRequest(object, id, verb: "subscribe") else { return }
        let key = SessionMessage.channelKey(channel, property: property)
        subscribed[key] = (channel, property)
        hub.subscribe(self.id, to: key)
        reply(SessionMessage.result(id))
    }

    private func unsubscribe(_ object: [String: Any], _ id: Any?) {
        guard let channel = object["channel"] as? String else {
            return reply(SessionMessage.error(id, "invalid_request", "channel is required"))
        }
        guard case .success(let property) = PropertyName.parse(json: object["property"]) else {
            return reply(SessionMessage.invalidProperty(id))
        }
        let key = SessionMessage.channelKey(channel, property: property)
        subscribed[key] = nil
        hub.unsubscribe(self.id, from: key)
        reply(SessionMessage.result(id))
    }

    private func publish(_ object: [String: Any], _ id: Any?) {
        guard let (channel, property) = channelRequest(object, id, verb: "publish") else { return }
        if let cluster = services.cluster, cluster.isFeedLost {
            return reply(SessionMessage.error(id, "feed_lost", "this node lost the cluster's change feed; try again shortly"))
        }
        let done = SessionMessage.result(id)
        let failed = SessionMessage.error(id, "unavailable", "the event could not be stored for the other nodes; try again")
        // In a cluster the answer waits until the event is durable for every node.
        let hub = hub, sessionID = self.id
        services.publish(channel: channel, property: property, data: object["data"] ?? NSNull()) { stored in
            hub.loop.execute { hub.sessions[sessionID]?.reply(stored ? done : failed) }
        }
    }

    // MARK: - Calls

    /// `{"type":"call","id":…,"call":"pms:checkIn","property":"hotel-1","body":{…}}`: checked
    /// against the key's rights and rules, then forwarded, signed, to the service's upstream. The
    /// answer comes back as a result (2xx) or a typed error; calls run concurrently, up to the
    /// per-session cap.
    private func call(_ object: [String: Any], _ id: Any?) {
        let metrics = services.metrics
        if let cluster = services.cluster, cluster.isFeedLost {
            metrics.call("feed_lost")
            return reply(SessionMessage.error(id, "feed_lost", "this node lost the cluster's change feed; try again shortly"))
        }
        guard let action = object["call"] as? String, let colon = action.firstIndex(of: ":") else {
            metrics.call("invalid_request")
            return reply(SessionMessage.error(id, "invalid_request", "call is required: \"<service>:<api_name>\""))
        }
        guard case .success(let property) = PropertyName.parse(json: object["property"]) else {
            metrics.call("invalid_property")
            return reply(SessionMessage.invalidProperty(id))
        }
        if ActionName.validateAction(action) != nil {
            metrics.call("invalid_request")
            return reply(SessionMessage.error(id, "invalid_request", "a call is <service>:<api_name>: letters, digits, _ and -, api segments separated by . or /"))
        }
        let decision = authorize(action, property)
        guard decision.allowed else {
            metrics.call(decision.reason.refusalCode)
            return reply(SessionMessage.refusal(id, decision, "this key may not call \(action)"))
        }
        guard let calls = services.calls, let upstream = calls.upstreams[String(action[..<colon])] else {
            metrics.call("unknown_service")
            return reply(SessionMessage.error(id, "unknown_service", "no upstream is configured for \(action[..<colon])"))
        }
        if let wait = services.callLimiter.take(keyID, rate: limits.callsPerSecond ?? 0, burst: limits.callBurst ?? 1) {
            metrics.call("rate_limited")
            rejectedMessages += 1
            if rejectedMessages > services.policy.floodTolerance { end(.rateLimited); return }
            return reply(SessionMessage.error(id, "rate_limited", "too many calls", [("retryAfterMs", .int(RetryAfter.milliseconds(wait)))]))
        }
        guard self.calls.count < calls.policy.maxCallsPerSession else {
            metrics.call("too_many_calls")
            return reply(SessionMessage.error(id, "too_many_calls", "at most \(calls.policy.maxCallsPerSession) calls in flight per session",
                                              [("retryAfterMs", .int(100))]))
        }
        var body: [UInt8] = []
        if let value = object["body"] { body = SessionMessage.encodeAny(value) }
        let caller = CallService.Caller(userID: userID, keyID: keyID, scopes: callScopes(), properties: rights().properties, property: property)
        let request = calls.request(to: upstream, method: "POST", api: String(action[action.index(after: colon)...]), query: nil,
                                          headers: [HTTPHeader("Content-Type", "application/json"), HTTPHeader("Accept", "application/json")],
                                          body: body, caller: caller, requestID: hub.makeRequestID())
        let pending = SessionCall(id: id, session: self, maxBytes: services.server.frames.maxMessageBytes - 256)
        let exchange = UpstreamExchange(request: request, method: "POST", timeoutCoversBody: true, responder: pending)
        pending.exchange = exchange
        self.calls[ObjectIdentifier(pending)] = pending
        calls.pool(upstream, on: hub).start(exchange)
    }

    /// A session that ends sends nothing more upstream: its waiting calls are dropped first (so
    /// closing a busy connection does not hand it one of them), then those in flight.
    private func cancelCalls() {
        let all = Array(calls.values)
        calls = [:]
        for call in all where !call.isOnConnection { call.cancel() }
        for call in all where call.isOnConnection { call.cancel() }
        if !all.isEmpty { services.metrics.call("cancelled", count: all.count) }
    }

    /// A call's outcome, once: its answer or typed error goes back to the client.
    func callFinished(_ call: SessionCall, _ message: [UInt8], result: String) {
        guard calls.removeValue(forKey: ObjectIdentifier(call)) != nil else { return }
        services.metrics.call(result)
        if result == "answered" { services.metrics.callDuration.observe(Double(monotonicNanoseconds() &- call.started) / 1e9) }
        guard !ended else { return }
        reply(message)
    }

    private func authorize(_ action: String, _ property: String?) -> AccessDecision {
        Authorizer.decide(AccessRequest(action: action, property: property), key: key, user: user, groups: groups, now: Date())
    }

    func reply(_ bytes: [UInt8]) {
        services.metrics.messagesOut.add()
        connection?.send(text: bytes)
    }

    // MARK: - Ending

    /// Notice, then a close frame with the reason's code (RFC 6455 close handshake follows).
    /// Returns false if the session had already ended.
    @discardableResult
    func end(_ reason: SessionEndReason) -> Bool {
        guard !ended, let connection else { return false }
        ended = true
        cancelCalls()
        services.metrics.sessionEnded(reason)
        // One write of bytes encoded once per reason: the notice, then the close frame.
        connection.send(finalFrames: services.endFrames[reason]!, closeCode: reason.closeCode)
        services.logger.info("session ended", metadata: ["session.id": "\(id)", "key.id": "\(keyID)", "reason": "\(reason.rawValue)"])
        return true
    }

    /// Re-reads the key and user after a change. Ends the session if it may no longer exist;
    /// otherwise drops subscriptions it may no longer hold and pushes `permissions_changed`.
    /// Returns true if the session was ended.
    func recompute(_ current: (APIKey, User, [String: PermissionGroup], KeySecrets)?) -> Bool {
        guard !ended else { return false }
        guard let (newKey, newUser, newGroups, secrets) = current else { end(.keyDeleted); return true }
        if let reason = Self.endReason(key: newKey, user: newUser, secrets: secrets, digest: digest, now: Date()) {
            end(reason)
            return true
        }
        let before = rights()
        let expiryBefore = key.expiresAt
        key = newKey
        user = newUser
        groups = newGroups
        cachedCallScopes = nil
        limits = services.limits(key: newKey, groups: newGroups)
        previousUntil = secrets.current == digest ? nil : secrets.previousUntil
        var removed: [JSONText] = []
        for (channelKey, sub) in subscribed where !authorize("channel:subscribe.\(sub.channel)", sub.property).allowed {
            subscribed[channelKey] = nil
            hub.unsubscribe(id, from: channelKey)
            var entry: [(String, JSONText)] = [("channel", .string(sub.channel))]
            if let p = sub.property { entry.append(("property", .string(p))) }
            removed.append(.object(entry))
        }
        let after = rights()
        if before != after || !removed.isEmpty {
            let message = JSONText.object([("type", .string("permissions_changed"))] + after.members + [("removedSubscriptions", .array(removed))])
            connection?.send(text: message.bytes)
        }
        if expiryBefore != key.expiresAt || previousUntil != nil {
            for timer in timers { hub.loop.cancel(timer) }
            timers = []
            scheduleTimers()
        }
        return false
    }

    /// Why a session of `key`, opened with `digest`, must end now (nil: it may go on).
    static func endReason(key: APIKey, user: User, secrets: KeySecrets, digest: KeyDigest, now: Date) -> SessionEndReason? {
        if let reason = SessionEndReason.refusing(key, of: user, at: now) { return reason }
        if secrets.current == digest { return nil }
        if secrets.previous == digest, let until = secrets.previousUntil, until > now { return nil }
        return .keyRotated
    }

    // MARK: - Welcome, rights, timers

    /// Effective rights as a session sees them.
    struct Rights: Equatable {
        var scopes: [String]
        var properties: [String]
        var rules: [String]
        var expiresAt: Date?

        var members: [(String, JSONText)] {
            [("scopes", JSONText.strings(scopes)), ("properties", JSONText.strings(properties)), ("rules", JSONText.strings(rules)),
             ("expiresAt", expiresAt.map { .string(RFC3339.format($0)) } ?? .null)]
        }
    }

    private func rights() -> Rights { Self.rights(key: key, user: user, groups: groups) }

    /// What upstreams are told the session may do (`X-Doorman-Scopes`): the patterns its user,
    /// key, group and rules all allow in full. Worked out once per rights change, not per call.
    private func callScopes() -> [String] {
        if let scopes = cachedCallScopes { return scopes }
        let scopes = Self.callScopes(key: key, user: user, groups: groups)
        cachedCallScopes = scopes
        return scopes
    }

    static func callScopes(key: APIKey, user: User, groups: [String: PermissionGroup]) -> [String] {
        GatewayCore.Rights(key: key, user: user, groups: groups).patternsAllowedInFull()
    }

    static func rights(key: APIKey, user: User, groups: [String: PermissionGroup]) -> Rights {
        var scopes = key.scopes + (key.groupID.flatMap { groups[$0]?.permissions } ?? [])
        if key.scopes.isEmpty && key.groupID == nil {
            scopes = user.permissions + user.groups.flatMap { groups[$0]?.permissions ?? [] }
        }
        let properties: [String]
        if key.properties.contains("*") { properties = user.properties }
        else if user.properties.contains("*") { properties = key.properties }
        else { properties = key.properties.filter(user.properties.contains) }
        return Rights(scopes: scopes, properties: properties, rules: key.rules, expiresAt: key.expiresAt)
    }

    /// `{"type":"welcome","session":"<id>"` + the rest, which depends only on the key, its user
    /// and groups: built once per key and cache generation on this loop, not per handshake.
    private func welcome() -> [UInt8] {
        let rest = hub.welcomeRest(keyID: keyID, generation: generation) {
            JSONText.object([
                ("user", .object([("id", .string(user.id)), ("name", .string(user.name))])),
                ("key", .object([("id", .string(key.id)), ("name", .string(key.name))])),
            ] + rights().members).bytes.dropFirst()   // without its "{": it follows the session id
        }
        var bytes = Array(#"{"type":"welcome","session":""#.utf8)
        bytes.reserveCapacity(bytes.count + 24 + rest.count)
        bytes += String(id).utf8
        bytes += #"","#.utf8
        bytes += rest
        return bytes
    }

    /// Exact-time timers: expiry warning, expiry, and the end of a rotation's grace.
    private func scheduleTimers() {
        let loop = hub.loop
        func at(_ date: Date) -> UInt64 {
            // A fresh clock reading, not the loop's cached one: a deadline must never come early.
            let delta = date.timeIntervalSinceNow
            return monotonicNanoseconds() &+ (delta > 0 ? UInt64((delta * 1e9).rounded(.up)) : 0)
        }
        if let expiry = key.expiresAt {
            let warnAt = expiry.addingTimeInterval(-services.policy.expiryWarning)
            if warnAt > Date() {
                timers.append(loop.schedule(at: at(warnAt)) { [weak self] in
                    self?.connection?.send(text: JSONText.object([("type", .string("expiry_warning")), ("expiresAt", .string(RFC3339.format(expiry)))]).bytes)
                })
            }
            timers.append(loop.schedule(at: at(expiry)) { [weak self] in self?.end(.keyExpired) })
        }
        if let until = previousUntil {
            timers.append(loop.schedule(at: at(until)) { [weak self] in self?.end(.keyRotated) })
        }
    }
}
